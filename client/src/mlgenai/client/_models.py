"""Logged model helpers of :class:`mlgenai.client.Client` (dicts in, dicts out)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlgenai.client._experiments import _VIEWS
from mlgenai.client.convert import to_dict, to_timestamp
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import logged_model_pb2 as mpb, logged_model_service_pb2 as svc
from mlgenai.v1.logged_model_service_pb2_grpc import LoggedModelServiceStub

_STATUSES = {"READY": mpb.LOGGED_MODEL_STATUS_READY, "FAILED": mpb.LOGGED_MODEL_STATUS_FAILED}


class LoggedModelsMixin:
    models: LoggedModelServiceStub

    def create_logged_model(
        self,
        experiment_id: str,
        name: str = "",
        *,
        model_type: str = "",
        source_run_id: str = "",
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> dict[str, Any]:
        """A new PENDING model with the next version of its (experiment, name); an empty name
        lets the server pick one."""
        req = svc.CreateLoggedModelRequest(
            experiment_id=experiment_id,
            name=name,
            model_type=model_type,
            source_run_id=source_run_id,
            params=dict(params or {}),
            tags=dict(tags or {}),
            request_id=request_id,
        )
        return to_dict(self.models.CreateLoggedModel(req))

    def get_logged_model(self, model_id: str) -> dict[str, Any]:
        return to_dict(self.models.GetLoggedModel(svc.GetLoggedModelRequest(model_id=model_id)))

    def search_logged_models(
        self,
        experiment_ids: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        view: str = "ACTIVE_ONLY",
        *,
        page_size: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Every matching model, fetching pages as the iterator advances.

        ``view`` is ``ACTIVE_ONLY``, ``DELETED_ONLY`` or ``ALL``.
        """
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {sorted(_VIEWS)}")
        req = svc.SearchLoggedModelsRequest(
            experiment_ids=list(experiment_ids),
            filter=filter,
            order_by=list(order_by),
            view=_VIEWS[view],
            page_size=page_size,
        )
        for model in iter_pages(self.models.SearchLoggedModels, req, "models"):
            yield to_dict(model)

    def finalize_logged_model(self, model_id: str, status: str = "READY", message: str = "") -> dict[str, Any]:
        """Set the final status: ``READY`` or ``FAILED``."""
        if status not in _STATUSES:
            raise ValueError(f"status must be one of {sorted(_STATUSES)}")
        req = svc.FinalizeLoggedModelRequest(model_id=model_id, status=_STATUSES[status], status_message=message)
        return to_dict(self.models.FinalizeLoggedModel(req))

    def log_model_params(self, model_id: str, params: Mapping[str, str]) -> dict[str, Any]:
        """Write-once params; returns the model."""
        req = svc.LogLoggedModelParamsRequest(model_id=model_id, params=dict(params))
        return to_dict(self.models.LogLoggedModelParams(req))

    def log_model_metrics(
        self,
        model_id: str,
        metrics: Mapping[str, float] | Sequence[Mapping[str, Any]],
        *,
        step: int = 0,
        dataset_id: str = "",
        dataset_digest: str = "",
        run_id: str = "",
    ) -> None:
        """Log metric values: ``{"accuracy": 0.9, …}`` or a list of dicts with ``name``, ``value``
        and optionally ``step``, ``time`` (aware datetime or epoch ms), ``dataset_id``,
        ``dataset_digest``, ``run_id``; the keyword arguments are the defaults of each value."""
        defaults = {"step": step, "dataset_id": dataset_id, "dataset_digest": dataset_digest, "run_id": run_id}
        items: list[Mapping[str, Any]] = (
            [{"name": k, "value": v} for k, v in metrics.items()] if isinstance(metrics, Mapping) else list(metrics)
        )
        points = []
        for item in items:
            fields = {**defaults, **item}
            time = fields.pop("time", None)
            point = mpb.LoggedModelMetric(**fields)
            if time is not None:
                point.time.CopyFrom(to_timestamp(time))
            points.append(point)
        self.models.LogLoggedModelMetrics(svc.LogLoggedModelMetricsRequest(model_id=model_id, metrics=points))

    def set_logged_model_tags(self, model_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
        req = svc.SetLoggedModelTagsRequest(model_id=model_id, tags=dict(tags))
        return to_dict(self.models.SetLoggedModelTags(req))

    def delete_logged_model_tag(self, model_id: str, key: str) -> dict[str, Any]:
        req = svc.DeleteLoggedModelTagRequest(model_id=model_id, key=key)
        return to_dict(self.models.DeleteLoggedModelTag(req))

    def delete_logged_model(self, model_id: str) -> dict[str, Any]:
        """Soft delete (idempotent); returns the model."""
        return to_dict(self.models.DeleteLoggedModel(svc.DeleteLoggedModelRequest(model_id=model_id)))
