"""LoggedModelService (SPEC §6)."""

from __future__ import annotations

from collections.abc import Callable

import grpc

from mlgenai.v1 import logged_model_pb2 as mpb, logged_model_service_pb2 as pb, logged_model_service_pb2_grpc
from server.convert.common import VIEWS, now_ms
from server.convert.ids import check_model_id, check_run_id
from server.convert.logged_models import (
    FINAL_STATUS,
    check_metrics,
    check_name,
    check_search,
    metric_from_proto,
    to_proto,
)
from server.idempotency import idempotent_write
from server.validation import Violations
from store import limits
from store.domain import SearchQuery
from store.model_domain import LoggedModel as LoggedModelDomain, NewLoggedModel
from store.names import random_name
from store.query.keyset import page_size_of
from store.repositories.experiments import parse_experiment_id
from store.uow import Database, UnitOfWork

Ctx = grpc.ServicerContext
LoggedModel = mpb.LoggedModel


def _checked(model_id: str) -> Violations:
    checks = Violations()
    check_model_id(checks, "model_id", model_id)
    return checks


class LoggedModelServicer(logged_model_service_pb2_grpc.LoggedModelServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def CreateLoggedModel(self, request: pb.CreateLoggedModelRequest, context: Ctx) -> LoggedModel:
        parse_experiment_id(request.experiment_id)
        checks = Violations()
        check_name(checks, request.name)
        checks.text("model_type", request.model_type, max_len=limits.MODEL_TYPE_MAX)
        check_run_id(checks, "source_run_id", request.source_run_id, required=False)
        checks.params("params", request.params, required=False)
        checks.tags("tags", request.tags)
        checks.request_id(request.request_id)
        checks.raise_if_any()
        new = NewLoggedModel(
            experiment_id=request.experiment_id,
            name=request.name or random_name(),
            model_type=request.model_type,
            source_run_id=request.source_run_id,
            params=dict(request.params),
            tags=dict(request.tags),
        )
        return idempotent_write(
            self.db,
            "CreateLoggedModel",
            request,
            LoggedModel,
            lambda uow: to_proto(uow.logged_models.create(new, now_ms())),
        )

    def GetLoggedModel(self, request: pb.GetLoggedModelRequest, context: Ctx) -> LoggedModel:
        _checked(request.model_id).raise_if_any()
        return to_proto(self.db.read(lambda uow: uow.logged_models.get(request.model_id)))

    def SearchLoggedModels(self, request: pb.SearchLoggedModelsRequest, context: Ctx) -> pb.SearchLoggedModelsResponse:
        checks = Violations()
        check_search(checks, request.experiment_ids)
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
        ids = list(request.experiment_ids)
        page = self.db.read(lambda uow: uow.logged_models.search(ids, query, view or "active"))
        return pb.SearchLoggedModelsResponse(
            models=[to_proto(m) for m in page.items], next_page_token=page.next_page_token
        )

    def FinalizeLoggedModel(self, request: pb.FinalizeLoggedModelRequest, context: Ctx) -> LoggedModel:
        checks = _checked(request.model_id)
        status = FINAL_STATUS.get(request.status)
        if status is None:
            checks.add("status", "must be LOGGED_MODEL_STATUS_READY or LOGGED_MODEL_STATUS_FAILED")
        checks.text("status_message", request.status_message, max_len=limits.MODEL_STATUS_MESSAGE_MAX)
        checks.raise_if_any()
        assert status is not None
        return self._write(
            lambda uow: uow.logged_models.finalize(request.model_id, status, request.status_message, now_ms())
        )

    def DeleteLoggedModel(self, request: pb.DeleteLoggedModelRequest, context: Ctx) -> LoggedModel:
        _checked(request.model_id).raise_if_any()
        return self._write(lambda uow: uow.logged_models.delete(request.model_id, now_ms()))

    def SetLoggedModelTags(self, request: pb.SetLoggedModelTagsRequest, context: Ctx) -> LoggedModel:
        checks = _checked(request.model_id)
        if not request.tags:
            checks.add("tags", "at least one tag is required")
        checks.tags("tags", request.tags)
        checks.raise_if_any()
        tags = dict(request.tags)
        return self._write(lambda uow: uow.logged_models.set_tags(request.model_id, tags, now_ms()))

    def DeleteLoggedModelTag(self, request: pb.DeleteLoggedModelTagRequest, context: Ctx) -> LoggedModel:
        checks = _checked(request.model_id)
        checks.text("key", request.key, max_len=limits.TAG_KEY_MAX, required=True)
        checks.raise_if_any()
        return self._write(lambda uow: uow.logged_models.delete_tag(request.model_id, request.key, now_ms()))

    def LogLoggedModelParams(self, request: pb.LogLoggedModelParamsRequest, context: Ctx) -> LoggedModel:
        checks = _checked(request.model_id)
        checks.params("params", request.params, required=True)
        checks.raise_if_any()
        params = dict(request.params)
        return self._write(lambda uow: uow.logged_models.log_params(request.model_id, params, now_ms()))

    def LogLoggedModelMetrics(
        self, request: pb.LogLoggedModelMetricsRequest, context: Ctx
    ) -> pb.LogLoggedModelMetricsResponse:
        checks = _checked(request.model_id)
        check_metrics(checks, request.metrics)
        checks.raise_if_any()
        now = now_ms()
        points = [metric_from_proto(m, now) for m in request.metrics]
        self.db.write(lambda uow: uow.logged_models.log_metrics(request.model_id, points, now))
        return pb.LogLoggedModelMetricsResponse()

    def _write(self, work: Callable[[UnitOfWork], LoggedModelDomain]) -> LoggedModel:
        return to_proto(self.db.write(work))
