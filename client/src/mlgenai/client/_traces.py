"""Trace helpers of :class:`mlgenai.client.Client` (dicts in, dicts out).

A span is a dict with the fields of ``mlgenai.v1.Span``; only ``trace_id``, ``span_id``,
``name`` and ``start_time_unix_nano`` are required. ``status`` is "UNSET", "OK" or "ERROR";
``inputs``/``outputs`` any JSON value; ``attributes`` a dict; ``events`` a list of
``{"name", "time_unix_nano", "attributes"}``. :func:`span` builds one with sensible defaults.

>>> tid = new_trace_id()
>>> root = span(tid, "agent", inputs={"q": "hi"}, outputs="hello", status="OK")
>>> client.log_spans(exp_id, [root, span(tid, "llm", parent=root, attributes={...})])
>>> client.get_trace(tid)["info"]["state"]
'OK'
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from google.protobuf.timestamp_pb2 import Timestamp

from mlgenai.client.convert import to_dict, to_struct, to_value
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as pb
from mlgenai.v1.trace_service_pb2_grpc import TraceServiceStub

_STATUS = {
    "UNSET": span_pb2.SPAN_STATUS_CODE_UNSPECIFIED,
    "": span_pb2.SPAN_STATUS_CODE_UNSPECIFIED,
    "OK": span_pb2.SPAN_STATUS_CODE_OK,
    "ERROR": span_pb2.SPAN_STATUS_CODE_ERROR,
}
_STATES = {"OK": trace_pb2.TRACE_STATE_OK, "ERROR": trace_pb2.TRACE_STATE_ERROR}


def new_trace_id() -> str:
    """A fresh trace id: "tr-" + 32 random lowercase hex characters."""
    return "tr-" + os.urandom(16).hex()


def new_span_id() -> str:
    return os.urandom(8).hex()


def span(
    trace_id: str,
    name: str,
    *,
    parent: Mapping[str, Any] | str = "",
    span_id: str = "",
    span_type: str = "UNKNOWN",
    start_time_unix_nano: int = 0,
    end_time_unix_nano: int | None = None,
    status: str = "OK",
    status_message: str = "",
    inputs: Any = None,
    outputs: Any = None,
    attributes: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A span dict. ``parent`` is a span dict or a span id; times default to now (ended)."""
    start = start_time_unix_nano or time.time_ns()
    return {
        "trace_id": trace_id,
        "span_id": span_id or new_span_id(),
        "parent_span_id": parent["span_id"] if isinstance(parent, Mapping) else parent,
        "name": name,
        "span_type": span_type,
        "start_time_unix_nano": start,
        "end_time_unix_nano": start if end_time_unix_nano is None else end_time_unix_nano,
        "status": status,
        "status_message": status_message,
        "inputs": inputs,
        "outputs": outputs,
        "attributes": dict(attributes or {}),
    }


def span_to_proto(s: Mapping[str, Any]) -> span_pb2.Span:
    msg = span_pb2.Span(
        trace_id=s["trace_id"],
        span_id=s["span_id"],
        parent_span_id=s.get("parent_span_id", ""),
        name=s["name"],
        span_type=s.get("span_type", ""),
        start_time_unix_nano=s["start_time_unix_nano"],
        end_time_unix_nano=s.get("end_time_unix_nano") or 0,
        status=span_pb2.SpanStatus(code=_STATUS[s.get("status", "UNSET")], message=s.get("status_message", "")),
        attributes=to_struct(s.get("attributes") or {}),
    )
    for field in ("inputs", "outputs"):
        if s.get(field) is not None:
            getattr(msg, field).CopyFrom(to_value(s[field]))
    for event in s.get("events") or ():
        msg.events.add(
            name=event["name"],
            time_unix_nano=event.get("time_unix_nano", 0),
            attributes=to_struct(event.get("attributes") or {}),
        )
    return msg


def _timestamp(seconds: float | None) -> Timestamp | None:
    if seconds is None:
        return None
    ts = Timestamp()
    ts.FromNanoseconds(int(seconds * 1e9))
    return ts


class TracesMixin:
    traces: TraceServiceStub

    def start_trace(
        self,
        experiment_id: str,
        trace_id: str = "",
        *,
        tags: Mapping[str, str] | None = None,
        metadata: Mapping[str, str] | None = None,
        client_request_id: str = "",
        request_preview: str = "",
    ) -> dict[str, Any]:
        """Create (or merge into) a trace; returns its info. ``trace_id`` defaults to a new one."""
        info = trace_pb2.TraceInfo(
            trace_id=trace_id or new_trace_id(),
            experiment_id=experiment_id,
            tags=dict(tags or {}),
            trace_metadata=dict(metadata or {}),
            client_request_id=client_request_id,
            request_preview=request_preview,
        )
        return to_dict(self.traces.StartTrace(pb.StartTraceRequest(trace_info=info)))

    def log_spans(self, experiment_id: str, spans: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
        """Store span dicts (of one or many traces) in one call."""
        request = pb.LogSpansRequest(experiment_id=experiment_id, spans=[span_to_proto(s) for s in spans])
        return to_dict(self.traces.LogSpans(request))

    def end_trace(
        self,
        trace_id: str,
        state: str = "OK",
        *,
        end_time: float | None = None,
        response_preview: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """End a trace: ``state`` "OK" or "ERROR"; ``end_time`` in epoch seconds (default: its last span end)."""
        request = pb.EndTraceRequest(
            trace_id=trace_id,
            state=_STATES[state],
            end_time=_timestamp(end_time),
            response_preview=response_preview,
            tags=dict(tags or {}),
        )
        return to_dict(self.traces.EndTrace(request))

    def get_trace(self, trace_id: str, *, include_spans: bool = True) -> dict[str, Any]:
        """``{"info": {...}, "spans": [...]}``, spans root first."""
        return to_dict(self.traces.GetTrace(pb.GetTraceRequest(trace_id=trace_id, include_spans=include_spans)))

    def search_traces(
        self, experiment_ids: Sequence[str], filter: str = "", *, order_by: Sequence[str] = (), page_size: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Every matching trace info (no spans), fetching pages as the iterator advances."""
        request = pb.SearchTracesRequest(
            experiment_ids=list(experiment_ids), filter=filter, order_by=list(order_by), page_size=page_size
        )
        for info in iter_pages(self.traces.SearchTraces, request, "traces"):
            yield to_dict(info)

    def set_trace_tag(self, trace_id: str, key: str, value: str) -> None:
        self.traces.SetTraceTag(pb.SetTraceTagRequest(trace_id=trace_id, key=key, value=value))

    def delete_trace_tag(self, trace_id: str, key: str) -> None:
        self.traces.DeleteTraceTag(pb.DeleteTraceTagRequest(trace_id=trace_id, key=key))

    def delete_traces(
        self,
        experiment_id: str,
        trace_ids: Sequence[str] = (),
        *,
        before: float | None = None,
        max_traces: int = 0,
    ) -> int:
        """Delete the given traces, or the oldest ones started before ``before`` (epoch seconds)."""
        request = pb.DeleteTracesRequest(
            experiment_id=experiment_id,
            trace_ids=list(trace_ids),
            max_request_time=_timestamp(before),
            max_traces=max_traces,
        )
        return int(self.traces.DeleteTraces(request).deleted_count)
