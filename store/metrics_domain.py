"""QueryTraceMetrics (SPEC §9): the catalogue of views, metrics and dimensions, the query and
its result. Pure data, shared by the server (validation) and the store (SQL).

A view is what one row is: a trace (TRACES), a span joined to its trace (SPANS), a valid
assessment joined to its trace (ASSESSMENTS). A ``*_count`` metric counts rows (
``session_count``: distinct non-null session ids) and takes COUNT only; any other metric is a
number per row, and rows without one (a running trace's latency, a span that has not ended, an
assessment whose value has no numeric view) are left out of its groups.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

TRACES = "TRACES"
SPANS = "SPANS"
ASSESSMENTS = "ASSESSMENTS"

COUNT = "COUNT"
SUM = "SUM"
AVG = "AVG"
MIN = "MIN"
MAX = "MAX"
PERCENTILE = "PERCENTILE"

_COUNT_ONLY = frozenset({COUNT})
_ALL = frozenset({COUNT, SUM, AVG, MIN, MAX, PERCENTILE})
_NO_SUM = _ALL - {SUM}

_TRACE_DIMENSIONS = ("trace_name", "trace_status", "model_id", "run_id")

# view -> metric -> aggregations allowed for it.
METRICS: Mapping[str, Mapping[str, frozenset[str]]] = {
    TRACES: {
        "trace_count": _COUNT_ONLY,
        "session_count": _COUNT_ONLY,
        "latency": _NO_SUM,
        "input_tokens": _ALL,
        "output_tokens": _ALL,
        "total_tokens": _ALL,
    },
    SPANS: {"span_count": _COUNT_ONLY, "latency": _NO_SUM},
    ASSESSMENTS: {"assessment_count": _COUNT_ONLY, "assessment_value": _NO_SUM},
}

# view -> dimensions it can be grouped by.
DIMENSIONS: Mapping[str, tuple[str, ...]] = {
    TRACES: (*_TRACE_DIMENSIONS, "session_id", "user_id"),
    SPANS: ("span_name", "span_type", "span_status", *_TRACE_DIMENSIONS),
    ASSESSMENTS: ("assessment_name", "assessment_kind", "source_type", "assessment_run_id", *_TRACE_DIMENSIONS),
}


def is_count_metric(metric: str) -> bool:
    return metric.endswith("_count")


@dataclass(frozen=True, slots=True)
class MetricAggregation:
    """One aggregation; ``percentile`` (0–100) for PERCENTILE only."""

    kind: str
    percentile: float = 0.0

    @property
    def key(self) -> str:
        """The key of its value in a data point: ``COUNT``… or ``P95.0``."""
        return f"P{float(self.percentile)}" if self.kind == PERCENTILE else self.kind


@dataclass(frozen=True, slots=True)
class MetricQuery:
    """A validated QueryTraceMetrics request. Times are epoch ms: traces with
    ``start_ms <= request_time < end_ms``; ``bucket_ms`` groups by request time (0: no buckets)."""

    experiment_ids: tuple[int, ...]
    view: str
    metric: str
    aggregations: tuple[MetricAggregation, ...]
    dimensions: tuple[str, ...] = ()
    filter: str = ""
    start_ms: int | None = None
    end_ms: int | None = None
    bucket_ms: int = 0
    max_points: int = 1_000


@dataclass(frozen=True, slots=True)
class MetricPoint:
    """One group: its bucket start (None without buckets), its dimension values in request order
    ("" where the row has none), and one value per aggregation key."""

    bucket_ms: int | None
    dimensions: tuple[str, ...]
    values: Mapping[str, float]


@dataclass(frozen=True, slots=True)
class MetricResult:
    points: list[MetricPoint]
    truncated: bool
