"""QueryTraceMetrics: the request checked and turned into a ``MetricQuery``; the result into
the response.

Every problem of a request is reported at once (INVALID_ARGUMENT, INVALID_FIELD, one field
violation each, fields named like ``aggregations[1].percentile``). The filter is checked by the
store when it compiles it (INVALID_FILTER). ``max_data_points`` above the maximum is clamped,
as page sizes are (SPEC §1.5).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.timestamp_pb2 import Timestamp

from mlgenai.v1 import analytics_service_pb2 as pb
from server.convert.common import timestamp
from server.validation import Violations
from store import limits
from store.errors import InvalidArgument
from store.metrics_domain import (
    ASSESSMENTS,
    AVG,
    COUNT,
    DIMENSIONS,
    MAX,
    METRICS,
    MIN,
    PERCENTILE,
    SPANS,
    SUM,
    TRACES,
    MetricAggregation,
    MetricQuery,
    MetricResult,
)
from store.repositories.experiments import parse_experiment_id

VIEWS = {pb.METRIC_VIEW_TRACES: TRACES, pb.METRIC_VIEW_SPANS: SPANS, pb.METRIC_VIEW_ASSESSMENTS: ASSESSMENTS}
KINDS = {
    pb.AGGREGATION_TYPE_COUNT: COUNT,
    pb.AGGREGATION_TYPE_SUM: SUM,
    pb.AGGREGATION_TYPE_AVG: AVG,
    pb.AGGREGATION_TYPE_MIN: MIN,
    pb.AGGREGATION_TYPE_MAX: MAX,
    pb.AGGREGATION_TYPE_PERCENTILE: PERCENTILE,
}
TIME_BUCKET = "time_bucket"


def metric_query(request: pb.QueryTraceMetricsRequest) -> MetricQuery:
    """The query ``request`` asks for; InvalidArgument listing every invalid field."""
    checks = Violations()
    experiment_ids = _experiment_ids(checks, list(request.experiment_ids))
    view = VIEWS.get(request.view)
    if view is None:
        checks.add("view", "one of METRIC_VIEW_TRACES, METRIC_VIEW_SPANS, METRIC_VIEW_ASSESSMENTS")
    allowed = METRICS[view].get(request.metric_name) if view is not None else None
    if view is not None and allowed is None:
        checks.add("metric_name", f"one of {', '.join(METRICS[view])} for {view}")
    aggregations = _aggregations(checks, request.aggregations, allowed or frozenset())
    if view is not None:
        _dimensions(checks, list(request.dimensions), DIMENSIONS[view])
    checks.text("filter", request.filter, max_len=limits.FILTER_MAX)
    start_ms = _ms(request.start_time) if request.HasField("start_time") else None
    end_ms = _ms(request.end_time) if request.HasField("end_time") else None
    if start_ms is not None and end_ms is not None and start_ms >= end_ms:
        checks.add("end_time", "must be after start_time")
    bucket_ms = _bucket_ms(checks, request) if request.HasField("time_bucket") else 0
    if request.max_data_points < 0:
        checks.add("max_data_points", "must not be negative")
    checks.raise_if_any()
    assert view is not None
    return MetricQuery(
        experiment_ids=tuple(experiment_ids),
        view=view,
        metric=request.metric_name,
        aggregations=tuple(aggregations),
        dimensions=tuple(request.dimensions),
        filter=request.filter,
        start_ms=start_ms,
        end_ms=end_ms,
        bucket_ms=bucket_ms,
        max_points=min(request.max_data_points or limits.METRIC_POINTS_DEFAULT, limits.METRIC_POINTS_MAX),
    )


def to_response(query: MetricQuery, result: MetricResult) -> pb.QueryTraceMetricsResponse:
    points = []
    for p in result.points:
        dimensions = dict(zip(query.dimensions, p.dimensions, strict=True))
        start: Timestamp | None = None
        if p.bucket_ms is not None:
            start = timestamp(p.bucket_ms)
            dimensions[TIME_BUCKET] = start.ToJsonString()
        points.append(pb.MetricDataPoint(dimensions=dimensions, values=dict(p.values), time_bucket_start=start))
    return pb.QueryTraceMetricsResponse(data_points=points, truncated=result.truncated)


def _experiment_ids(checks: Violations, ids: list[str]) -> list[int]:
    if not 0 < len(ids) <= limits.METRIC_EXPERIMENTS_MAX:
        checks.add("experiment_ids", f"1 to {limits.METRIC_EXPERIMENTS_MAX} experiment ids (got {len(ids)})")
    out: list[int] = []
    for i, experiment_id in enumerate(ids[: limits.METRIC_EXPERIMENTS_MAX]):
        try:
            out.append(parse_experiment_id(experiment_id, f"experiment_ids[{i}]"))
        except InvalidArgument as err:
            checks.items.extend(err.violations)
    return sorted(set(out))


def _aggregations(
    checks: Violations, items: Sequence[pb.Aggregation], allowed: frozenset[str]
) -> list[MetricAggregation]:
    if not 0 < len(items) <= limits.METRIC_AGGREGATIONS_MAX:
        checks.add("aggregations", f"1 to {limits.METRIC_AGGREGATIONS_MAX} aggregations (got {len(items)})")
    out: list[MetricAggregation] = []
    for i, item in enumerate(items[: limits.METRIC_AGGREGATIONS_MAX]):
        kind = KINDS.get(item.type)
        if kind is None:
            checks.add(f"aggregations[{i}].type", "one of COUNT, SUM, AVG, MIN, MAX, PERCENTILE")
            continue
        if allowed and kind not in allowed:
            names = ", ".join(k for k in KINDS.values() if k in allowed)
            checks.add(f"aggregations[{i}].type", f"{kind} is not allowed for this metric (allowed: {names})")
        if kind == PERCENTILE and not 0.0 <= item.percentile <= 100.0:  # NaN fails too
            checks.add(f"aggregations[{i}].percentile", "must be between 0 and 100")
        elif kind != PERCENTILE and item.percentile != 0.0:
            checks.add(f"aggregations[{i}].percentile", "only for PERCENTILE")
        agg = MetricAggregation(kind, item.percentile if kind == PERCENTILE else 0.0)
        if any(a.key == agg.key for a in out):
            checks.add(f"aggregations[{i}]", f"{agg.key} is requested twice")
        out.append(agg)
    return out


def _dimensions(checks: Violations, names: list[str], known: tuple[str, ...]) -> None:
    if len(names) > limits.METRIC_DIMENSIONS_MAX:
        checks.add("dimensions", f"at most {limits.METRIC_DIMENSIONS_MAX} dimensions (got {len(names)})")
    for i, name in enumerate(names):
        if name not in known:
            checks.add(f"dimensions[{i}]", f"{name[:60]!r} is not a dimension of this view (known: {', '.join(known)})")
        elif name in names[:i]:
            checks.add(f"dimensions[{i}]", f"{name!r} is given twice")


def _bucket_ms(checks: Violations, request: pb.QueryTraceMetricsRequest) -> int:
    bucket = request.time_bucket
    if bucket.seconds < 1 or bucket.nanos != 0:
        checks.add("time_bucket", "whole seconds, at least 1 s")
        return 0
    return int(bucket.seconds) * 1000


def _ms(stamp: Timestamp) -> int:
    """Epoch ms rounded up: with integer request times, ``t >= 1.5 ms`` is ``t >= 2 ms``."""
    nanos = stamp.seconds * 1_000_000_000 + stamp.nanos
    return -(-nanos // 1_000_000)
