"""ExperimentService (SPEC §2)."""

from __future__ import annotations

import grpc

from mlgenai.v1 import experiment_pb2, experiment_service_pb2 as pb, experiment_service_pb2_grpc
from server.convert.common import VIEWS, now_ms
from server.convert.experiments import to_proto
from server.field_masks import mask_paths
from server.idempotency import idempotent_write
from server.validation import Violations
from store import limits
from store.domain import ACTIVE, DELETED, SearchQuery
from store.query.keyset import page_size_of
from store.repositories.experiments import parse_experiment_id
from store.uow import Database

Ctx = grpc.ServicerContext
Experiment = experiment_pb2.Experiment


class ExperimentServicer(experiment_service_pb2_grpc.ExperimentServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def CreateExperiment(self, request: pb.CreateExperimentRequest, context: Ctx) -> Experiment:
        checks = Violations()
        checks.name("name", request.name)
        checks.text("artifact_location", request.artifact_location, max_len=limits.ARTIFACT_LOCATION_MAX)
        checks.tags("tags", request.tags)
        checks.request_id(request.request_id)
        checks.raise_if_any()
        return idempotent_write(
            self.db,
            "CreateExperiment",
            request,
            Experiment,
            lambda uow: to_proto(
                uow.experiments.create(request.name, request.artifact_location, dict(request.tags), now_ms())
            ),
        )

    def GetExperiment(self, request: pb.GetExperimentRequest, context: Ctx) -> Experiment:
        return to_proto(self.db.read(lambda uow: uow.experiments.get(request.experiment_id)))

    def GetExperimentByName(self, request: pb.GetExperimentByNameRequest, context: Ctx) -> Experiment:
        checks = Violations()
        checks.text("name", request.name, max_len=limits.NAME_MAX, required=True)
        checks.raise_if_any()
        return to_proto(self.db.read(lambda uow: uow.experiments.get_by_name(request.name)))

    def UpdateExperiment(self, request: pb.UpdateExperimentRequest, context: Ctx) -> Experiment:
        exp = request.experiment
        parse_experiment_id(exp.experiment_id, "experiment.experiment_id")
        paths = mask_paths(
            request.update_mask,
            exp,
            mutable={"name"},
            output_only={"experiment_id", "lifecycle_stage", "create_time", "update_time"},
        )
        checks = Violations()
        if "name" in paths:
            checks.name("experiment.name", exp.name)
        checks.raise_if_any()
        if not paths:
            return to_proto(self.db.read(lambda uow: uow.experiments.get(exp.experiment_id)))
        return to_proto(self.db.write(lambda uow: uow.experiments.rename(exp.experiment_id, exp.name, now_ms())))

    def DeleteExperiment(self, request: pb.DeleteExperimentRequest, context: Ctx) -> Experiment:
        stage = DELETED
        return to_proto(
            self.db.write(lambda uow: uow.experiments.set_lifecycle_stage(request.experiment_id, stage, now_ms()))
        )

    def UndeleteExperiment(self, request: pb.UndeleteExperimentRequest, context: Ctx) -> Experiment:
        stage = ACTIVE
        return to_proto(
            self.db.write(lambda uow: uow.experiments.set_lifecycle_stage(request.experiment_id, stage, now_ms()))
        )

    def SetExperimentTag(self, request: pb.SetExperimentTagRequest, context: Ctx) -> pb.SetExperimentTagResponse:
        checks = Violations()
        checks.tag("key", request.key, "value", request.value)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.experiments.set_tag(request.experiment_id, request.key, request.value, now_ms()))
        return pb.SetExperimentTagResponse()

    def DeleteExperimentTag(
        self, request: pb.DeleteExperimentTagRequest, context: Ctx
    ) -> pb.DeleteExperimentTagResponse:
        checks = Violations()
        checks.text("key", request.key, max_len=limits.TAG_KEY_MAX, required=True)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.experiments.delete_tag(request.experiment_id, request.key, now_ms()))
        return pb.DeleteExperimentTagResponse()

    def SearchExperiments(self, request: pb.SearchExperimentsRequest, context: Ctx) -> pb.SearchExperimentsResponse:
        query = SearchQuery(
            filter=request.filter,
            order_by=tuple(request.order_by),
            page_size=page_size_of(request.page_size),
            page_token=request.page_token,
        )
        view = VIEWS.get(request.view)
        if view is None:
            checks = Violations()
            checks.add("view", f"unknown view {request.view}")
            checks.raise_if_any()
        page = self.db.read(lambda uow: uow.experiments.search(query, view or "active"))
        return pb.SearchExperimentsResponse(
            experiments=[to_proto(e) for e in page.items], next_page_token=page.next_page_token
        )
