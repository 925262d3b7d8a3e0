"""EvaluationRunService (SPEC §7)."""

from __future__ import annotations

import grpc

from mlgenai.v1 import evaluation_run_pb2, evaluation_run_service_pb2 as pb, evaluation_run_service_pb2_grpc
from server.convert.common import VIEWS, now_ms
from server.convert.datasets import DATASET_ID, EXPERIMENT_ID
from server.convert.ids import check_model_id, check_run_id
from server.convert.runs import STATUSES, metric_of, ms_of, to_proto
from server.field_masks import mask_paths
from server.idempotency import idempotent_write
from server.validation import Violations
from store import limits
from store.domain import SearchQuery
from store.names import random_name
from store.query.keyset import page_size_of
from store.run_domain import NewRun, RunChanges
from store.uow import Database

Ctx = grpc.ServicerContext
EvaluationRun = evaluation_run_pb2.EvaluationRun
_MUTABLE = {"name", "status", "end_time"}
_OUTPUT_ONLY = {"run_id", "metrics", "lifecycle_stage", "update_time"}


def _valid_run_id(field: str, run_id: str) -> None:
    checks = Violations()
    check_run_id(checks, field, run_id)
    checks.raise_if_any()


def _new_run(request: pb.CreateRunRequest) -> NewRun:
    checks = Violations()
    if not EXPERIMENT_ID.fullmatch(request.experiment_id) or int(request.experiment_id) > limits.ID_INT_MAX:
        checks.add("experiment_id", "required: an experiment id (a decimal integer)")
    if request.name:
        checks.name("name", request.name)
    dataset_id, version = "", 0
    if request.HasField("dataset"):
        dataset_id, version = request.dataset.dataset_id, request.dataset.dataset_version
        if not DATASET_ID.fullmatch(dataset_id):
            checks.add("dataset.dataset_id", f"{dataset_id[:50]!r} is not a dataset id ('d-' + 32 hex)")
        if version < 0:
            checks.add("dataset.dataset_version", "must not be negative (0: the current version)")
    check_model_id(checks, "model_id", request.model_id, required=False)
    checks.params("params", request.params, required=False)
    checks.tags("tags", request.tags)
    checks.request_id(request.request_id)
    checks.raise_if_any()
    return NewRun(
        experiment_id=request.experiment_id,
        name=request.name or random_name(),
        dataset_id=dataset_id or None,
        dataset_version=version,
        model_id=request.model_id or None,
        params=dict(request.params),
        tags=dict(request.tags),
    )


def _changes(request: pb.UpdateRunRequest) -> RunChanges:
    run = request.run
    _valid_run_id("run.run_id", run.run_id)
    paths = mask_paths(request.update_mask, run, mutable=_MUTABLE, output_only=_OUTPUT_ONLY)
    checks = Violations()
    if "name" in paths:
        checks.name("run.name", run.name)
    if "status" in paths and run.status not in STATUSES:
        checks.add("run.status", "RUNNING, FINISHED, FAILED or KILLED")
    if "end_time" in paths and not run.HasField("end_time"):
        checks.add("run.end_time", "required when end_time is in the update_mask")
    checks.raise_if_any()
    return RunChanges(
        name=run.name if "name" in paths else None,
        status=STATUSES[run.status] if "status" in paths else None,
        end_time_ms=ms_of(run.end_time) if "end_time" in paths else None,
    )


class RunServicer(evaluation_run_service_pb2_grpc.EvaluationRunServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def CreateRun(self, request: pb.CreateRunRequest, context: Ctx) -> EvaluationRun:
        new = _new_run(request)
        return idempotent_write(
            self.db, "CreateRun", request, EvaluationRun, lambda uow: to_proto(uow.runs.create(new, now_ms()))
        )

    def GetRun(self, request: pb.GetRunRequest, context: Ctx) -> EvaluationRun:
        _valid_run_id("run_id", request.run_id)
        return to_proto(self.db.read(lambda uow: uow.runs.get(request.run_id)))

    def UpdateRun(self, request: pb.UpdateRunRequest, context: Ctx) -> EvaluationRun:
        changes = _changes(request)
        run_id = request.run.run_id
        if changes == RunChanges():
            return to_proto(self.db.read(lambda uow: uow.runs.get(run_id)))
        return to_proto(self.db.write(lambda uow: uow.runs.update(run_id, changes, now_ms())))

    def DeleteRun(self, request: pb.DeleteRunRequest, context: Ctx) -> EvaluationRun:
        _valid_run_id("run_id", request.run_id)
        return to_proto(self.db.write(lambda uow: uow.runs.delete(request.run_id, now_ms())))

    def UndeleteRun(self, request: pb.UndeleteRunRequest, context: Ctx) -> EvaluationRun:
        _valid_run_id("run_id", request.run_id)
        return to_proto(self.db.write(lambda uow: uow.runs.undelete(request.run_id, now_ms())))

    def SearchRuns(self, request: pb.SearchRunsRequest, context: Ctx) -> pb.SearchRunsResponse:
        checks = Violations()
        if not 0 < len(request.experiment_ids) <= limits.SEARCH_EXPERIMENTS_MAX:
            checks.add("experiment_ids", f"1 to {limits.SEARCH_EXPERIMENTS_MAX} experiment ids")
        view = VIEWS.get(request.view)
        if view is None:
            checks.add("view", f"unknown view {request.view}")
        checks.raise_if_any()
        query = SearchQuery(
            filter=request.filter,
            order_by=tuple(request.order_by),
            page_size=page_size_of(request.page_size),
            page_token=request.page_token,
        )
        page = self.db.read(lambda uow: uow.runs.search(list(request.experiment_ids), query, view or "active"))
        return pb.SearchRunsResponse(runs=[to_proto(r) for r in page.items], next_page_token=page.next_page_token)

    def LogParams(self, request: pb.LogParamsRequest, context: Ctx) -> pb.LogParamsResponse:
        checks = Violations()
        check_run_id(checks, "run_id", request.run_id)
        checks.params("params", request.params, required=True)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.runs.log_params(request.run_id, dict(request.params), now_ms()))
        return pb.LogParamsResponse()

    def LogMetrics(self, request: pb.LogMetricsRequest, context: Ctx) -> pb.LogMetricsResponse:
        checks = Violations()
        check_run_id(checks, "run_id", request.run_id)
        if not 0 < len(request.metrics) <= limits.METRICS_PER_CALL_MAX:
            checks.add("metrics", f"1 to {limits.METRICS_PER_CALL_MAX} metric values (got {len(request.metrics)})")
        for i, metric in enumerate(request.metrics[: limits.METRICS_PER_CALL_MAX]):
            checks.text(f"metrics[{i}].name", metric.name, max_len=limits.METRIC_NAME_MAX, required=True)
        checks.raise_if_any()
        now = now_ms()
        points = [metric_of(m, now) for m in request.metrics]
        self.db.write(lambda uow: uow.runs.log_metrics(request.run_id, points, now))
        return pb.LogMetricsResponse()

    def SetRunTag(self, request: pb.SetRunTagRequest, context: Ctx) -> pb.SetRunTagResponse:
        checks = Violations()
        check_run_id(checks, "run_id", request.run_id)
        checks.tag("key", request.key, "value", request.value)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.runs.set_tag(request.run_id, request.key, request.value, now_ms()))
        return pb.SetRunTagResponse()

    def DeleteRunTag(self, request: pb.DeleteRunTagRequest, context: Ctx) -> pb.DeleteRunTagResponse:
        checks = Violations()
        check_run_id(checks, "run_id", request.run_id)
        checks.text("key", request.key, max_len=limits.TAG_KEY_MAX, required=True)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.runs.delete_tag(request.run_id, request.key, now_ms()))
        return pb.DeleteRunTagResponse()
