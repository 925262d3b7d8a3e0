"""Builders and a brute-force reference for the QueryTraceMetrics tests.

``Writer`` stores traces, spans and assessments through the real API. ``reference`` computes
what QueryTraceMetrics must answer from what the API returns for those traces (GetTrace: info,
spans, assessments with their ``valid`` flag), in plain Python, so the SQL is checked against an
independent computation.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mlgenai.client import Client, from_value, to_struct, to_value
from mlgenai.v1 import (
    analytics_service_pb2 as pb,
    assessment_pb2 as apb,
    assessment_service_pb2 as aspb,
    assessment_service_pb2_grpc as ag,
    span_pb2,
    trace_pb2,
    trace_service_pb2 as tpb,
    trace_service_pb2_grpc as tg,
)

TRACES = pb.METRIC_VIEW_TRACES
SPANS = pb.METRIC_VIEW_SPANS
ASSESSMENTS = pb.METRIC_VIEW_ASSESSMENTS
COUNT = pb.AGGREGATION_TYPE_COUNT
SUM = pb.AGGREGATION_TYPE_SUM
AVG = pb.AGGREGATION_TYPE_AVG
MIN = pb.AGGREGATION_TYPE_MIN
MAX = pb.AGGREGATION_TYPE_MAX
PCT = pb.AGGREGATION_TYPE_PERCENTILE
HOUR_MS = 3_600_000
SOURCES = {"HUMAN": apb.ASSESSMENT_SOURCE_TYPE_HUMAN, "LLM_JUDGE": apb.ASSESSMENT_SOURCE_TYPE_LLM_JUDGE,
           "CODE": apb.ASSESSMENT_SOURCE_TYPE_CODE}  # fmt: skip
SOURCE_NAMES = {v: k for k, v in SOURCES.items()}
SPAN_STATUS = {span_pb2.SPAN_STATUS_CODE_UNSPECIFIED: "UNSET", span_pb2.SPAN_STATUS_CODE_OK: "OK",
               span_pb2.SPAN_STATUS_CODE_ERROR: "ERROR"}  # fmt: skip
TRACE_STATE = {trace_pb2.TRACE_STATE_OK: "OK", trace_pb2.TRACE_STATE_ERROR: "ERROR",
               trace_pb2.TRACE_STATE_IN_PROGRESS: "IN_PROGRESS"}  # fmt: skip
KEYS = {COUNT: "COUNT", SUM: "SUM", AVG: "AVG", MIN: "MIN", MAX: "MAX"}


def tid(n: int) -> str:
    return f"tr-{n:032x}"


def sid(n: int) -> str:
    return f"{n:016x}"


def agg(kind: int, percentile: float = 0.0) -> pb.Aggregation:
    return pb.Aggregation(type=kind, percentile=percentile)  # type: ignore[arg-type]


def key_of(a: pb.Aggregation) -> str:
    return f"P{float(a.percentile)}" if a.type == PCT else KEYS[a.type]


def stamp(ms: int) -> Timestamp:
    out = Timestamp()
    out.FromMilliseconds(ms)
    return out


class Writer:
    """Writes through TraceService and AssessmentService; reads back for the reference."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.traces = tg.TraceServiceStub(client.channel)
        self.assessments = ag.AssessmentServiceStub(client.channel)

    def experiment(self, name: str) -> str:
        return str(self.client.create_experiment(name)["experiment_id"])

    def trace(
        self,
        experiment_id: str,
        n: int,
        at_ms: int,
        duration_ms: int | None = None,
        *,
        state: str = "OK",
        name: str | None = None,
        metadata: Mapping[str, str] | None = None,
    ) -> str:
        info = trace_pb2.TraceInfo(
            trace_id=tid(n),
            experiment_id=experiment_id,
            request_time=stamp(at_ms),
            state={v: k for k, v in TRACE_STATE.items()}[state],
            trace_metadata=dict(metadata or {}),
            tags={"mlflow.traceName": name} if name is not None else {},
        )
        if duration_ms is not None:
            info.execution_duration.CopyFrom(Duration(seconds=duration_ms // 1000, nanos=duration_ms % 1000 * 10**6))
        self.traces.StartTrace(tpb.StartTraceRequest(trace_info=info))
        return tid(n)

    def spans(self, experiment_id: str, spans: Sequence[span_pb2.Span]) -> None:
        for i in range(0, len(spans), 5_000):
            self.traces.LogSpans(tpb.LogSpansRequest(experiment_id=experiment_id, spans=list(spans[i : i + 5_000])))

    def assess(self, items: Sequence[apb.Assessment]) -> list[apb.Assessment]:
        out: list[apb.Assessment] = []
        for i in range(0, len(items), 1_000):
            req = aspb.BatchCreateAssessmentsRequest(assessments=list(items[i : i + 1_000]))
            out.extend(self.assessments.BatchCreateAssessments(req).assessments)
        return out

    def read(self, trace_ids: Iterable[str]) -> list[trace_pb2.Trace]:
        return [self.traces.GetTrace(tpb.GetTraceRequest(trace_id=t)) for t in trace_ids]


def span(trace_id: str, n: int, *, name: str = "s", kind: str = "", start_ms: float = 0,
         end_ms: float | None = None, status: str = "UNSET", parent: str = "",
         attrs: Mapping[str, Any] | None = None) -> span_pb2.Span:  # fmt: skip
    """A span; times in epoch ms (``end_ms`` None: still running)."""
    code = {v: k for k, v in SPAN_STATUS.items()}[status]
    out = span_pb2.Span(
        trace_id=trace_id, span_id=sid(n), parent_span_id=parent, name=name, span_type=kind,
        start_time_unix_nano=_ns(start_ms), end_time_unix_nano=0 if end_ms is None else _ns(end_ms),
        status=span_pb2.SpanStatus(code=code),  # type: ignore[arg-type]
    )  # fmt: skip
    if attrs:
        out.attributes.CopyFrom(to_struct(attrs))
    return out


def _ns(ms: float) -> int:
    whole = int(ms)
    return whole * 10**6 + round((ms - whole) * 10**6)


def assessment(trace_id: str, name: str, value: Any = None, *, kind: str = "feedback", source: str = "CODE",
               run_id: str = "", overrides: str = "", error: bool = False) -> apb.Assessment:  # fmt: skip
    out = apb.Assessment(
        trace_id=trace_id, name=name, run_id=run_id, overrides=overrides,
        source=apb.AssessmentSource(source_type=SOURCES[source], source_id="x"),  # type: ignore[arg-type]
    )  # fmt: skip
    if kind == "expectation":
        out.expectation.value.CopyFrom(to_value(value))
    elif error:
        out.feedback.error.CopyFrom(apb.AssessmentError(error_code="E", error_message="failed"))
    else:
        out.feedback.value.CopyFrom(to_value(value))
    return out


# -- the reference --------------------------------------------------------------------------


def percentile_cont(values: Sequence[float], p: float) -> float:
    """Linear interpolation between the closest ranks, as PostgreSQL's percentile_cont."""
    ordered = sorted(values)
    position = (p / 100.0) * (len(ordered) - 1)
    low = math.floor(position)
    if low == math.ceil(position):
        return float(ordered[low])
    return float(ordered[low]) + (position - low) * (float(ordered[low + 1]) - float(ordered[low]))


def numeric_view(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.isascii() and value.lower() in ("yes", "no"):
        return 1.0 if value.lower() == "yes" else 0.0
    return None


def _trace_row(t: trace_pb2.Trace) -> dict[str, Any]:
    i = t.info
    return {
        "time": i.request_time.ToMilliseconds(),
        "trace_name": i.name, "trace_status": TRACE_STATE[i.state], "model_id": i.model_id, "run_id": i.run_id,
        "session_id": i.session_id, "user_id": i.user_id,
        "latency": i.execution_duration.ToMilliseconds() if i.HasField("execution_duration") else None,
        "session_count": i.session_id or None,
        **({k: getattr(i.token_usage, k) if i.HasField("token_usage") else None
            for k in ("input_tokens", "output_tokens", "total_tokens")}),
    }  # fmt: skip


def rows_of(view: int, traces: Sequence[trace_pb2.Trace]) -> list[dict[str, Any]]:
    """One dict per row of ``view``: request time, every dimension, every metric value."""
    out: list[dict[str, Any]] = []
    for t in traces:
        base = _trace_row(t)
        if view == TRACES:
            out.append(base)
        elif view == SPANS:
            for s in t.spans:
                ended = s.end_time_unix_nano != 0
                out.append(base | {
                    "span_name": s.name, "span_type": s.span_type or "UNKNOWN",  # the server's default
                    "span_status": SPAN_STATUS[s.status.code],
                    "latency": (s.end_time_unix_nano - s.start_time_unix_nano) / 1e6 if ended else None,
                })  # fmt: skip
        else:
            for a in t.info.assessments:
                if not a.valid:
                    continue
                kind = a.WhichOneof("value")
                part = a.feedback if kind == "feedback" else a.expectation
                value = from_value(part.value) if part.HasField("value") else None
                out.append(base | {
                    "assessment_name": a.name, "assessment_kind": kind,
                    "source_type": SOURCE_NAMES[a.source.source_type], "assessment_run_id": a.run_id,
                    "assessment_value": numeric_view(value),
                })  # fmt: skip
    return out


@dataclass(frozen=True)
class Point:
    dimensions: dict[str, str]
    values: dict[str, float]


def reference(
    rows: Sequence[dict[str, Any]],
    metric: str,
    aggregations: Sequence[pb.Aggregation],
    dimensions: Sequence[str] = (),
    bucket_ms: int = 0,
) -> list[Point]:
    """What QueryTraceMetrics answers for ``rows`` (already restricted to the selected traces)."""
    groups: dict[tuple[Any, ...], list[Any]] = defaultdict(list)
    counting = metric.endswith("_count")
    for r in rows:
        value = r.get(metric) if metric != "trace_count" else 1
        if metric in ("span_count", "assessment_count"):
            value = 1
        if value is None and not counting:
            continue
        bucket = (r["time"] // bucket_ms * bucket_ms,) if bucket_ms else ()
        groups[bucket + tuple(r[d] for d in dimensions)].append(value)
    points = []
    for key in sorted(groups):
        values = groups[key]
        present = [v for v in values if v is not None]
        out: dict[str, float] = {}
        for a in aggregations:
            if a.type == COUNT:
                out["COUNT"] = float(len(set(present)) if metric == "session_count" else len(present))
            elif a.type == SUM:
                out["SUM"] = float(sum(present))
            elif a.type == AVG:
                out["AVG"] = sum(present) / len(present)
            elif a.type == MIN:
                out["MIN"] = float(min(present))
            elif a.type == MAX:
                out["MAX"] = float(max(present))
            else:
                out[key_of(a)] = percentile_cont(present, a.percentile)
        dims = dict(zip(dimensions, key[1:] if bucket_ms else key, strict=True))
        if bucket_ms:
            dims["time_bucket"] = stamp(key[0]).ToJsonString()
        points.append(Point(dims, out))
    return points


def assert_same(got: Sequence[pb.MetricDataPoint], expected: Sequence[Point], rel: float = 1e-9) -> None:
    assert [dict(p.dimensions) for p in got] == [e.dimensions for e in expected]
    for g, e in zip(got, expected, strict=True):
        assert set(g.values) == set(e.values), (dict(g.values), e.values)
        for k, v in e.values.items():
            assert math.isclose(g.values[k], v, rel_tol=rel, abs_tol=1e-12), (k, g.values[k], v, e.dimensions)
