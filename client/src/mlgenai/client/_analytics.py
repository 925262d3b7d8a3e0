"""Analytics helpers of :class:`mlgenai.client.Client` (plain values in, dicts out)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

from google.protobuf import duration_pb2, timestamp_pb2

from mlgenai.client.convert import to_timestamp
from mlgenai.v1 import analytics_service_pb2 as apb
from mlgenai.v1.analytics_service_pb2_grpc import AnalyticsServiceStub

_METRIC_VIEWS = {
    "TRACES": apb.METRIC_VIEW_TRACES,
    "SPANS": apb.METRIC_VIEW_SPANS,
    "ASSESSMENTS": apb.METRIC_VIEW_ASSESSMENTS,
}
_AGGREGATION_TYPES = {
    "COUNT": apb.AGGREGATION_TYPE_COUNT,
    "SUM": apb.AGGREGATION_TYPE_SUM,
    "AVG": apb.AGGREGATION_TYPE_AVG,
    "MIN": apb.AGGREGATION_TYPE_MIN,
    "MAX": apb.AGGREGATION_TYPE_MAX,
}


def _metric_aggregation(text: str) -> apb.Aggregation:
    """``"AVG"`` …, or a percentile as ``"P95"``, ``"P99.9"`` or ``"PERCENTILE:95"``."""
    name = text.strip().upper()
    if name in _AGGREGATION_TYPES:
        return apb.Aggregation(type=_AGGREGATION_TYPES[name])
    for prefix in ("PERCENTILE:", "P"):
        if name.startswith(prefix):
            try:
                value = float(name.removeprefix(prefix))
            except ValueError:
                break
            return apb.Aggregation(type=apb.AGGREGATION_TYPE_PERCENTILE, percentile=value)
    raise ValueError(f"unknown aggregation {text!r}: COUNT, SUM, AVG, MIN, MAX, P<p> or PERCENTILE:<p>")


def _metric_view(name: str) -> apb.MetricView.ValueType:
    view = _METRIC_VIEWS.get(name.upper().removeprefix("METRIC_VIEW_"))
    if view is None:
        raise ValueError(f"unknown view {name!r}: TRACES, SPANS or ASSESSMENTS")
    return view


class AnalyticsMixin:
    analytics: AnalyticsServiceStub

    def query_trace_metrics(
        self,
        experiment_ids: Sequence[str],
        view: str,
        metric: str,
        aggregations: Sequence[str] = ("COUNT",),
        *,
        dimensions: Sequence[str] = (),
        filter: str = "",
        start_time: dt.datetime | timestamp_pb2.Timestamp | None = None,
        end_time: dt.datetime | timestamp_pb2.Timestamp | None = None,
        time_bucket_seconds: int = 0,
        max_data_points: int = 0,
    ) -> list[dict[str, Any]]:
        """Aggregate one metric of traces, spans or assessments (``view`` "TRACES", "SPANS" or
        "ASSESSMENTS"), grouped by ``dimensions`` and, with ``time_bucket_seconds``, by time.

        >>> client.query_trace_metrics(["1"], "TRACES", "latency", ["P95", "AVG"],
        ...                            dimensions=["model_id"], time_bucket_seconds=86400)
        [{'dimensions': {'model_id': 'm-…', 'time_bucket': '2026-01-01T00:00:00Z'},
          'values': {'P95.0': 812.0, 'AVG': 340.5}}, …]
        """
        request = apb.QueryTraceMetricsRequest(
            experiment_ids=list(experiment_ids),
            view=_metric_view(view),
            metric_name=metric,
            aggregations=[_metric_aggregation(a) for a in aggregations],
            dimensions=list(dimensions),
            filter=filter,
            max_data_points=max_data_points,
        )
        if start_time is not None:
            request.start_time.CopyFrom(to_timestamp(start_time))
        if end_time is not None:
            request.end_time.CopyFrom(to_timestamp(end_time))
        if time_bucket_seconds:
            request.time_bucket.CopyFrom(duration_pb2.Duration(seconds=time_bucket_seconds))
        response = self.analytics.QueryTraceMetrics(request)
        return [{"dimensions": dict(p.dimensions), "values": dict(p.values)} for p in response.data_points]
