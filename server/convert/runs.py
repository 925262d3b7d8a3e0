"""EvaluationRun: domain <-> proto."""

from __future__ import annotations

from google.protobuf.timestamp_pb2 import Timestamp

from mlgenai.v1 import evaluation_run_pb2 as pb
from server.convert.common import LIFECYCLE, timestamp
from store.run_domain import FAILED, FINISHED, KILLED, RUNNING, Run, RunMetric

STATUSES: dict[int, str] = {
    pb.RUN_STATUS_RUNNING: RUNNING,
    pb.RUN_STATUS_FINISHED: FINISHED,
    pb.RUN_STATUS_FAILED: FAILED,
    pb.RUN_STATUS_KILLED: KILLED,
}
_STATUS_NUMBERS = {name: number for number, name in STATUSES.items()}


def ms_of(ts: Timestamp) -> int:
    """Epoch milliseconds of a Timestamp (sub-millisecond precision is dropped)."""
    return int(ts.ToMilliseconds())


def metric_of(metric: pb.RunMetric, now_ms: int) -> RunMetric:
    time_ms = ms_of(metric.time) if metric.HasField("time") else now_ms
    return RunMetric(metric.name, metric.value, metric.step, time_ms)


def to_proto(run: Run) -> pb.EvaluationRun:
    out = pb.EvaluationRun(
        run_id=run.run_id,
        experiment_id=run.experiment_id,
        name=run.name,
        status=_STATUS_NUMBERS[run.status],  # type: ignore[arg-type]
        start_time=timestamp(run.start_time_ms),
        params=run.params,
        metrics=[pb.RunMetric(name=m.name, value=m.value, step=m.step, time=timestamp(m.time_ms)) for m in run.metrics],
        tags=run.tags,
        model_id=run.model_id or "",
        lifecycle_stage=LIFECYCLE[run.lifecycle_stage],
        update_time=timestamp(run.update_time_ms),
    )
    if run.end_time_ms is not None:
        out.end_time.CopyFrom(timestamp(run.end_time_ms))
    if run.dataset is not None:
        d = run.dataset
        out.dataset.CopyFrom(pb.RunDataset(dataset_id=d.dataset_id, dataset_version=d.version, digest=d.digest))
    return out
