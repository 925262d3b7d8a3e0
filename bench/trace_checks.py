"""Checks around the trace workloads: one call looked at before measuring, and, after an
ingestion workload, whether every acknowledged span was stored.

A probe is called with the server's address and returns a record merged into the workload's
result; a ``problem`` in it turns into a WRONG_RESULT error (a wrong answer must not pass as a
fast one). Ingestion probes send one real call (caller ``PROBE_CALLER``): it also warms the
server up, and it counts among the acknowledged calls (``probe_calls``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp_service

from bench.ops import Unary
from bench.trace_ops import SpanBatches
from bench.trace_seed import count_spans
from mlgenai.v1 import trace_pb2, trace_service_pb2 as tpb

Record = dict[str, Any]
PROBE_CALLER = 0xFFFF  # the load generator's callers are numbered from 0
PROBE_TIMEOUT_S = 300.0
_OPTIONS = [("grpc.max_receive_message_length", -1)]


def call_once(target: str, op: Unary, request: bytes) -> bytes:
    with grpc.insecure_channel(target, options=_OPTIONS) as channel:
        method: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(op.path)
        return method(request, timeout=PROBE_TIMEOUT_S, metadata=op.metadata or None)


@dataclass(frozen=True)
class IngestProbe:
    """One LogSpans/Export call: every span of it must be accepted."""

    op: Unary
    batches: SpanBatches

    def __call__(self, target: str) -> Record:
        raw = call_once(target, self.op, self.batches(PROBE_CALLER, 0))
        expected = self.batches.traces * self.batches.spans
        out: Record = {"probe_calls": 1}
        if self.batches.otlp:
            partial = otlp_service.ExportTraceServiceResponse.FromString(raw).partial_success
            if partial.rejected_spans or partial.error_message:
                out["problem"] = f"Export: {partial.rejected_spans} spans rejected: {partial.error_message[:300]}"
        else:
            resp = tpb.LogSpansResponse.FromString(raw)
            if resp.span_count != expected or list(resp.trace_ids) != sorted(self.batches.trace_ids(PROBE_CALLER, 0)):
                out["problem"] = f"LogSpans stored {resp.span_count} spans of {len(resp.trace_ids)} traces"
        return out


def _has_feedback_over(info: trace_pb2.TraceInfo, name: str, limit: float) -> bool:
    return any(
        a.valid and a.name == name and a.feedback.value.WhichOneof("kind") == "number_value"
        and a.feedback.value.number_value > limit
        for a in info.assessments
    )  # fmt: skip


@dataclass(frozen=True)
class SearchProbe:
    """The first page must be full, newest first, and every trace on it must match the filter."""

    op: Unary
    request: bytes
    check: str  # "tag_status" or "feedback"

    def __call__(self, target: str) -> Record:
        page = tpb.SearchTracesResponse.FromString(call_once(target, self.op, self.request))
        times = [t.request_time.ToMilliseconds() for t in page.traces]
        if self.check == "tag_status":
            wrong = [t for t in page.traces if t.tags.get("env") != "prod" or t.state != trace_pb2.TRACE_STATE_OK]
        else:
            wrong = [t for t in page.traces if not _has_feedback_over(t, "correctness", 0.5)]
        out: Record = {"rows_per_call": len(page.traces)}
        if wrong or len(page.traces) != 100 or times != sorted(times, reverse=True):
            out["problem"] = f"{len(page.traces)} traces, {len(wrong)} not matching the filter, or not newest first"
        return out


@dataclass(frozen=True)
class GetTraceProbe:
    """The whole trace must come back: ``spans`` spans, the root first."""

    op: Unary
    request: bytes
    spans: int

    def __call__(self, target: str) -> Record:
        raw = call_once(target, self.op, self.request)
        trace = trace_pb2.Trace.FromString(raw)
        out: Record = {"rows_per_call": len(trace.spans), "response_mb": round(len(raw) / 2**20, 1)}
        if len(trace.spans) != self.spans or trace.info.span_count != self.spans or trace.spans[0].parent_span_id:
            out["problem"] = f"{len(trace.spans)} spans returned (span_count {trace.info.span_count})"
        return out


def stored_check(url: str, experiment_id: str, acknowledged_calls: int, per_call: int) -> Record:
    """Spans stored in ``experiment_id`` against what the server acknowledged."""
    stored, expected = count_spans(url, experiment_id), acknowledged_calls * per_call
    out: Record = {"acknowledged_calls": acknowledged_calls, "spans_per_call": per_call, "stored_spans": stored}
    out["expected_spans"] = expected
    out["stored_ok"] = stored == expected
    return out
