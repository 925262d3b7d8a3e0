"""Builders shared by the TraceService tests: ids, spans, calls through the generated stub.

Times are fixed (``T0_MS`` and offsets from it), never the wall clock, so every derived value
(request time, duration, order) can be asserted exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from google.protobuf.duration_pb2 import Duration
from google.protobuf.timestamp_pb2 import Timestamp

from mlgenai.client import Client, to_struct, to_value
from mlgenai.client.convert import from_value
from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as pb, trace_service_pb2_grpc as tg
from store.orm.base import table
from store.orm.traces import AssessmentRow
from store.uow import Database

T0_MS = 1_750_000_000_000  # 2025-06-15T15:06:40Z
OK = span_pb2.SPAN_STATUS_CODE_OK
ERROR = span_pb2.SPAN_STATUS_CODE_ERROR
UNSET = span_pb2.SPAN_STATUS_CODE_UNSPECIFIED
TRACE_OK = trace_pb2.TRACE_STATE_OK
TRACE_ERROR = trace_pb2.TRACE_STATE_ERROR
TRACE_IN_PROGRESS = trace_pb2.TRACE_STATE_IN_PROGRESS
TRACE_TABLES = ("traces", "spans", "trace_tags", "trace_metadata")
USAGE = "mlflow.chat.tokenUsage"
AUTO_END = -(10**12)  # span(): end 10 ms after the start


def tid(n: int) -> str:
    """The n-th trace id: ``tr-`` + 32 lowercase hex."""
    return f"tr-{n:032x}"


def sid(n: int) -> str:
    """The n-th span id: 16 lowercase hex."""
    return f"{n:016x}"


def ns(ms: int) -> int:
    """Nanoseconds of ``T0_MS + ms``."""
    return (T0_MS + ms) * 1_000_000


def ts(ms: int) -> Timestamp:
    """The Timestamp of ``T0_MS + ms``."""
    stamp = Timestamp()
    stamp.FromMilliseconds(T0_MS + ms)
    return stamp


def duration_ms(info: trace_pb2.TraceInfo) -> int | None:
    return info.execution_duration.ToMilliseconds() if info.HasField("execution_duration") else None


def span(
    trace_id: str,
    span_id: str,
    parent: str = "",
    *,
    name: str = "s",
    start: int = 0,
    end: int | None = AUTO_END,
    status: int = UNSET,
    span_type: str = "",
    attrs: Mapping[str, Any] | None = None,
    inputs: Any = None,
    outputs: Any = None,
    events: Iterable[span_pb2.SpanEvent] = (),
    message: str = "",
) -> span_pb2.Span:
    """A span; ``start``/``end`` are ms after ``T0_MS`` (default end: start + 10; ``None``: running)."""
    if end == AUTO_END:
        end = start + 10
    out = span_pb2.Span(
        trace_id=trace_id,
        span_id=span_id,
        parent_span_id=parent,
        name=name,
        span_type=span_type,
        start_time_unix_nano=ns(start),
        end_time_unix_nano=0 if end is None else ns(end),
        status=span_pb2.SpanStatus(code=status, message=message),  # type: ignore[arg-type]
        events=list(events),
    )
    if attrs:
        out.attributes.CopyFrom(to_struct(attrs))
    if inputs is not None:
        out.inputs.CopyFrom(to_value(inputs))
    if outputs is not None:
        out.outputs.CopyFrom(to_value(outputs))
    return out


def usage(inp: int, out: int, total: int | None = None) -> dict[str, Any]:
    """Attributes of a span reporting token usage."""
    value = {"input_tokens": inp, "output_tokens": out}
    if total is not None:
        value["total_tokens"] = total
    return {USAGE: value}


class Traces:
    """The generated TraceService stub with short helpers for the calls tests repeat."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.stub = tg.TraceServiceStub(client.channel)

    def experiment(self, name: str) -> str:
        return str(self.client.create_experiment(name)["experiment_id"])

    def log(self, experiment_id: str, *spans: span_pb2.Span) -> pb.LogSpansResponse:
        return self.stub.LogSpans(pb.LogSpansRequest(experiment_id=experiment_id, spans=list(spans)))

    def start(self, **fields: Any) -> trace_pb2.TraceInfo:
        return self.stub.StartTrace(pb.StartTraceRequest(trace_info=trace_pb2.TraceInfo(**fields)))

    def end(self, trace_id: str, state: int = TRACE_OK, **fields: Any) -> trace_pb2.TraceInfo:
        return self.stub.EndTrace(pb.EndTraceRequest(trace_id=trace_id, state=state, **fields))  # type: ignore[arg-type]

    def get(self, trace_id: str, include_spans: bool | None = None) -> trace_pb2.Trace:
        request = pb.GetTraceRequest(trace_id=trace_id)
        if include_spans is not None:
            request.include_spans = include_spans
        return self.stub.GetTrace(request)

    def info(self, trace_id: str) -> trace_pb2.TraceInfo:
        return self.get(trace_id, include_spans=False).info

    def set_tag(self, trace_id: str, key: str, value: str) -> None:
        self.stub.SetTraceTag(pb.SetTraceTagRequest(trace_id=trace_id, key=key, value=value))

    def delete_tag(self, trace_id: str, key: str) -> None:
        self.stub.DeleteTraceTag(pb.DeleteTraceTagRequest(trace_id=trace_id, key=key))

    def delete(self, experiment_id: str, **fields: Any) -> int:
        return int(self.stub.DeleteTraces(pb.DeleteTracesRequest(experiment_id=experiment_id, **fields)).deleted_count)

    def search(
        self, experiment_ids: Sequence[str], filter: str = "", order_by: Sequence[str] = (), **fields: Any
    ) -> pb.SearchTracesResponse:
        request = pb.SearchTracesRequest(
            experiment_ids=list(experiment_ids), filter=filter, order_by=list(order_by), **fields
        )
        return self.stub.SearchTraces(request)

    def search_ids(
        self, experiment_ids: Sequence[str], filter: str = "", order_by: Sequence[str] = (), page_size: int = 0
    ) -> list[str]:
        """Every matching trace id, following page tokens to the end."""
        ids: list[str] = []
        token = ""
        while True:
            page = self.search(experiment_ids, filter, order_by, page_size=page_size, page_token=token)
            ids.extend(t.trace_id for t in page.traces)
            token = page.next_page_token
            if not token:
                return ids


def duration(ms: int) -> Duration:
    out = Duration()
    out.FromMilliseconds(ms)
    return out


def _usage_of(s: span_pb2.Span) -> tuple[int, int, int] | None:
    if USAGE not in s.attributes.fields:
        return None
    raw = from_value(s.attributes.fields[USAGE])
    inp, out = int(raw.get("input_tokens", 0)), int(raw.get("output_tokens", 0))
    return inp, out, int(raw.get("total_tokens", inp + out))


def recomputed(spans: Sequence[span_pb2.Span]) -> dict[str, Any]:
    """What a trace's info must say about ``spans`` (its stored spans), computed independently.

    Token usage: the sum over spans reporting usage that have no ancestor reporting usage.
    """
    parents = {s.span_id: s.parent_span_id for s in spans}
    usages = {s.span_id: u for s in spans if (u := _usage_of(s)) is not None}

    def hidden(span_id: str) -> bool:
        parent, seen = parents.get(span_id, ""), {span_id}
        while parent and parent not in seen:
            if parent in usages:
                return True
            seen.add(parent)
            parent = parents.get(parent, "")
        return False

    counted = [u for span_id, u in usages.items() if not hidden(span_id)]
    first = min(s.start_time_unix_nano for s in spans)
    last = max(s.end_time_unix_nano for s in spans)
    return {
        "span_count": len(spans),
        "usage": tuple(sum(u[i] for u in counted) for i in range(3)) if counted else None,
        "request_time_ms": first // 1_000_000,
        "duration_ms": (last - first) // 1_000_000,
    }


def stored_aggregates(info: trace_pb2.TraceInfo) -> dict[str, Any]:
    """The same fields as ``recomputed``, as the trace's info reports them."""
    u = info.token_usage
    return {
        "span_count": info.span_count,
        "usage": (u.input_tokens, u.output_tokens, u.total_tokens) if info.HasField("token_usage") else None,
        "request_time_ms": info.request_time.ToMilliseconds(),
        "duration_ms": duration_ms(info),
    }


def add_assessment(database: Database, trace_id: str, n: int) -> None:
    """Store a valid feedback on ``trace_id`` directly (setup: the rows DeleteTraces must cascade to)."""
    with database.engine.begin() as conn:
        conn.execute(
            sa.insert(table(AssessmentRow)).values(
                assessment_id=f"a-{n:032x}", trace_id=trace_id, name="quality", kind="feedback",
                source_type="HUMAN", value=1, metadata={}, valid=True, create_time=T0_MS, update_time=T0_MS,
            )
        )  # fmt: skip
