"""Evaluation run helpers of :class:`mlgenai.client.Client` (dicts in, dicts out).

A run comes back as a dict with the fields of ``mlgenai.v1.EvaluationRun``: ``status`` is
"RUNNING", "FINISHED", "FAILED" or "KILLED", times are timezone-aware ``datetime`` (``end_time``
None while running), ``metrics`` a list of ``{"name", "value", "step", "time"}``.

>>> run = client.create_run(exp_id, "baseline", dataset_id=ds_id, params={"model": "gpt"})
>>> client.log_metrics(run["run_id"], {"accuracy": 0.91})
>>> client.link_traces_to_run(run["run_id"], trace_ids)
>>> client.finish_run(run["run_id"])["status"]
'FINISHED'
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import field_mask_pb2

from mlgenai.client._experiments import _VIEWS
from mlgenai.client.convert import to_dict, to_timestamp
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import evaluation_run_pb2 as run_pb, evaluation_run_service_pb2 as svc, trace_service_pb2
from mlgenai.v1.evaluation_run_service_pb2_grpc import EvaluationRunServiceStub
from mlgenai.v1.trace_service_pb2_grpc import TraceServiceStub

LINK_BATCH = 100  # trace ids per LinkTracesToRun call


def _status(name: str) -> int:
    number = run_pb.RunStatus.Value(f"RUN_STATUS_{name.upper()}") if name else 0
    if not number:
        raise ValueError("status must be RUNNING, FINISHED, FAILED or KILLED")
    return number


def _metric(item: Mapping[str, Any], step: int) -> run_pb.RunMetric:
    metric = run_pb.RunMetric(name=item["name"], value=float(item["value"]), step=int(item.get("step", step)))
    if item.get("time") is not None:
        metric.time.CopyFrom(to_timestamp(item["time"]))
    return metric


class RunsMixin:
    runs: EvaluationRunServiceStub
    traces: TraceServiceStub

    def create_run(
        self,
        experiment_id: str,
        name: str = "",
        *,
        dataset_id: str = "",
        dataset_version: int = 0,
        model_id: str = "",
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> dict[str, Any]:
        """Create a RUNNING run; ``dataset_version`` 0 pins the dataset's current version."""
        req = svc.CreateRunRequest(
            experiment_id=experiment_id,
            name=name,
            model_id=model_id,
            params=dict(params or {}),
            tags=dict(tags or {}),
            request_id=request_id,
        )
        if dataset_id:
            req.dataset.CopyFrom(run_pb.RunDataset(dataset_id=dataset_id, dataset_version=dataset_version))
        return to_dict(self.runs.CreateRun(req))

    def get_run(self, run_id: str) -> dict[str, Any]:
        return to_dict(self.runs.GetRun(svc.GetRunRequest(run_id=run_id)))

    def update_run(
        self, run_id: str, *, name: str | None = None, status: str | None = None, end_time: dt.datetime | None = None
    ) -> dict[str, Any]:
        """Change the given fields; a status FINISHED/FAILED/KILLED without ``end_time`` ends the run now."""
        run = run_pb.EvaluationRun(run_id=run_id)
        paths = []
        if name is not None:
            run.name = name
            paths.append("name")
        if status is not None:
            run.status = _status(status)  # type: ignore[assignment]
            paths.append("status")
        if end_time is not None:
            run.end_time.CopyFrom(to_timestamp(end_time))
            paths.append("end_time")
        if not paths:
            return self.get_run(run_id)
        req = svc.UpdateRunRequest(run=run, update_mask=field_mask_pb2.FieldMask(paths=paths))
        return to_dict(self.runs.UpdateRun(req))

    def finish_run(self, run_id: str, status: str = "FINISHED") -> dict[str, Any]:
        return self.update_run(run_id, status=status)

    def delete_run(self, run_id: str) -> dict[str, Any]:
        return to_dict(self.runs.DeleteRun(svc.DeleteRunRequest(run_id=run_id)))

    def undelete_run(self, run_id: str) -> dict[str, Any]:
        return to_dict(self.runs.UndeleteRun(svc.UndeleteRunRequest(run_id=run_id)))

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        filter: str = "",
        order_by: Sequence[str] = (),
        view: str = "ACTIVE_ONLY",
        *,
        page_size: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Every matching run, fetching pages as the iterator advances.

        ``view`` is ``ACTIVE_ONLY``, ``DELETED_ONLY`` or ``ALL``.
        """
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {sorted(_VIEWS)}")
        req = svc.SearchRunsRequest(
            experiment_ids=list(experiment_ids),
            filter=filter,
            order_by=list(order_by),
            view=_VIEWS[view],
            page_size=page_size,
        )
        for run in iter_pages(self.runs.SearchRuns, req, "runs"):
            yield to_dict(run)

    def log_params(self, run_id: str, params: Mapping[str, str]) -> None:
        """Write-once parameters (an equal value again is fine, another one is an error)."""
        self.runs.LogParams(svc.LogParamsRequest(run_id=run_id, params=dict(params)))

    def log_metrics(
        self, run_id: str, metrics: Mapping[str, float] | Sequence[Mapping[str, Any]], *, step: int = 0
    ) -> None:
        """Log ``{name: value}`` at ``step``, or a list of ``{"name", "value", "step"?, "time"?}``."""
        if isinstance(metrics, Mapping):
            items: list[run_pb.RunMetric] = [
                run_pb.RunMetric(name=k, value=float(v), step=step) for k, v in metrics.items()
            ]
        else:
            items = [_metric(m, step) for m in metrics]
        self.runs.LogMetrics(svc.LogMetricsRequest(run_id=run_id, metrics=items))

    def set_run_tag(self, run_id: str, key: str, value: str) -> None:
        self.runs.SetRunTag(svc.SetRunTagRequest(run_id=run_id, key=key, value=value))

    def delete_run_tag(self, run_id: str, key: str) -> None:
        self.runs.DeleteRunTag(svc.DeleteRunTagRequest(run_id=run_id, key=key))

    def link_traces_to_run(
        self, run_id: str, trace_ids: Sequence[str], dataset_record_ids: Mapping[str, str] | None = None
    ) -> None:
        """Link traces to the run (idempotent), in calls of at most 100 ids.

        ``dataset_record_ids`` maps some of the traces to the dataset record each evaluated.
        Each call is all or nothing; a failing one leaves the earlier ones linked.
        """
        ids = list(dict.fromkeys(trace_ids))
        records = dict(dataset_record_ids or {})
        for start in range(0, len(ids), LINK_BATCH):
            batch = ids[start : start + LINK_BATCH]
            req = trace_service_pb2.LinkTracesToRunRequest(
                run_id=run_id,
                trace_ids=batch,
                dataset_record_ids={t: records[t] for t in batch if t in records},
            )
            self.traces.LinkTracesToRun(req)
