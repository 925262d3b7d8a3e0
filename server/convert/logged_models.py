"""Logged models: domain <-> proto, and the request checks shared by the LoggedModel RPCs."""

from __future__ import annotations

from collections.abc import Sequence

from mlgenai.v1 import logged_model_pb2 as mpb
from server.convert.common import LIFECYCLE, timestamp
from server.convert.datasets import DATASET_ID, check_count, check_experiment_ids
from server.convert.ids import check_run_id
from server.validation import Violations
from store import limits
from store.model_domain import FAILED, PENDING, READY, LoggedModel, ModelMetric

_TIME_MAX_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z
_NAME_FORBIDDEN = frozenset("/:.%\"'")
STATUS_TO_PROTO = {
    PENDING: mpb.LOGGED_MODEL_STATUS_PENDING,
    READY: mpb.LOGGED_MODEL_STATUS_READY,
    FAILED: mpb.LOGGED_MODEL_STATUS_FAILED,
}
FINAL_STATUS = {mpb.LOGGED_MODEL_STATUS_READY: READY, mpb.LOGGED_MODEL_STATUS_FAILED: FAILED}


# -- checks ------------------------------------------------------------------------------------


def check_name(checks: Violations, value: str) -> None:
    """An optional model name (empty: the server picks one)."""
    if not value:
        return
    checks.text("name", value, max_len=limits.NAME_MAX, blank_ok=False)
    if bad := sorted(set(value) & _NAME_FORBIDDEN):
        checks.add("name", f"must not contain {' '.join(bad)} (none of / : . % \" ' are allowed)")


def check_search(checks: Violations, experiment_ids: Sequence[str]) -> None:
    check_experiment_ids(checks, experiment_ids, required=True)


def check_metrics(checks: Violations, metrics: Sequence[mpb.LoggedModelMetric]) -> None:
    check_count(checks, "metrics", len(metrics), 1, limits.METRICS_PER_CALL_MAX)
    if len(metrics) > limits.METRICS_PER_CALL_MAX:
        return
    for i, m in enumerate(metrics):
        at = f"metrics[{i}]"
        checks.text(f"{at}.name", m.name, max_len=limits.METRIC_NAME_MAX, required=True)
        if m.dataset_id and not DATASET_ID.fullmatch(m.dataset_id):
            checks.add(f"{at}.dataset_id", f"{m.dataset_id[:50]!r} is not a dataset id ('d-' + 32 hex characters)")
        checks.text(f"{at}.dataset_digest", m.dataset_digest, max_len=limits.MODEL_DATASET_DIGEST_MAX)
        check_run_id(checks, f"{at}.run_id", m.run_id, required=False)
        if m.HasField("time") and not 0 <= m.time.ToMilliseconds() <= _TIME_MAX_MS:
            checks.add(f"{at}.time", "must be between 1970-01-01 and 9999-12-31")


# -- proto -> domain ---------------------------------------------------------------------------


def metric_from_proto(m: mpb.LoggedModelMetric, now_ms: int) -> ModelMetric:
    time_ms = m.time.ToMilliseconds() if m.HasField("time") else now_ms
    return ModelMetric(m.name, m.value, m.step, time_ms, m.dataset_id, m.dataset_digest, m.run_id)


# -- domain -> proto ---------------------------------------------------------------------------


def metric_to_proto(m: ModelMetric) -> mpb.LoggedModelMetric:
    return mpb.LoggedModelMetric(
        name=m.name,
        value=m.value,
        step=m.step,
        time=timestamp(m.time_ms),
        dataset_id=m.dataset_id,
        dataset_digest=m.dataset_digest,
        run_id=m.run_id,
    )


def to_proto(model: LoggedModel) -> mpb.LoggedModel:
    return mpb.LoggedModel(
        model_id=model.model_id,
        experiment_id=model.experiment_id,
        name=model.name,
        version=model.version,
        model_type=model.model_type,
        source_run_id=model.source_run_id,
        status=STATUS_TO_PROTO[model.status],
        status_message=model.status_message,
        params=model.params,
        tags=model.tags,
        metrics=[metric_to_proto(m) for m in model.metrics],
        lifecycle_stage=LIFECYCLE[model.lifecycle_stage],
        create_time=timestamp(model.create_time_ms),
        update_time=timestamp(model.update_time_ms),
    )
