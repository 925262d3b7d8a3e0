"""The spans every side ingests, as serialized OTLP ``ExportTraceServiceRequest`` messages.

Our server and Phoenix receive the same spans (same seed, shapes and sizes) over OTLP/gRPC; MLflow's SDK builds the same
tree (a root and ``spans - 1`` children with the same attribute sizes) through its own API.
Each trace is an agent call: a CHAIN root with the question and answer, children alternating
LLM calls (with token counts) and retriever calls. Standard library and opentelemetry-proto only
(see ``common``).
"""

from __future__ import annotations

import random
import time
from typing import Any

from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp_service
from opentelemetry.proto.common.v1 import common_pb2 as otlp_common
from opentelemetry.proto.resource.v1 import resource_pb2 as otlp_resource
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp_trace

TEXT_BYTES = 300  # the size of each input/output text


def text(rng: random.Random, size: int = TEXT_BYTES) -> str:
    words = ("agent", "span", "token", "vector", "answer", "policy", "refund", "order", "query", "model")
    out: list[str] = []
    length = 0
    while length < size:
        word = rng.choice(words)
        out.append(word)
        length += len(word) + 1
    return " ".join(out)[:size]


def _value(value: Any) -> otlp_common.AnyValue:
    if isinstance(value, bool):
        return otlp_common.AnyValue(bool_value=value)
    if isinstance(value, int):
        return otlp_common.AnyValue(int_value=value)
    return otlp_common.AnyValue(string_value=str(value))


def _attributes(values: dict[str, Any]) -> list[otlp_common.KeyValue]:
    return [otlp_common.KeyValue(key=k, value=_value(v)) for k, v in values.items()]


def span_attributes(index: int, rng: random.Random) -> dict[str, Any]:
    """The attributes of span ``index`` of a trace (0 is the root)."""
    if index == 0:
        return {"openinference.span.kind": "CHAIN", "input.value": text(rng), "output.value": text(rng)}
    if index % 2:
        return {
            "openinference.span.kind": "LLM",
            "llm.model_name": "gpt-bench",
            "input.value": text(rng),
            "output.value": text(rng),
            "llm.token_count.prompt": 120 + index,
            "llm.token_count.completion": 40 + index,
            "llm.token_count.total": 160 + 2 * index,
        }
    return {"openinference.span.kind": "RETRIEVER", "input.value": text(rng), "output.value": text(rng)}


def trace_spans(rng: random.Random, spans: int, start_ns: int) -> list[otlp_trace.Span]:
    trace_id = rng.randbytes(16)
    root_id = rng.randbytes(8)
    step = 2_000_000  # 2 ms per child
    out = [
        otlp_trace.Span(
            trace_id=trace_id,
            span_id=root_id,
            name="agent",
            kind=otlp_trace.Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=start_ns,
            end_time_unix_nano=start_ns + step * spans,
            attributes=_attributes(span_attributes(0, rng)),
            status=otlp_trace.Status(code=otlp_trace.Status.STATUS_CODE_OK),
        )
    ]
    for i in range(1, spans):
        begin = start_ns + step * i
        out.append(
            otlp_trace.Span(
                trace_id=trace_id,
                span_id=rng.randbytes(8),
                parent_span_id=root_id,
                name="llm" if i % 2 else "retrieve",
                kind=otlp_trace.Span.SPAN_KIND_INTERNAL,
                start_time_unix_nano=begin,
                end_time_unix_nano=begin + step // 2,
                attributes=_attributes(span_attributes(i, rng)),
                status=otlp_trace.Status(code=otlp_trace.Status.STATUS_CODE_OK),
            )
        )
    return out


def otlp_requests(
    traces: int, spans: int, per_request: int, resource: dict[str, str], seed: int = 7, now_ns: int | None = None
) -> list[bytes]:
    """``traces`` traces of ``spans`` spans, ``per_request`` traces per request, serialized; the
    traces end one second apart, the last just before ``now_ns``. The same arguments give the
    same bytes."""
    rng = random.Random(seed)
    now = time.time_ns() if now_ns is None else now_ns
    requests: list[bytes] = []
    for first in range(0, traces, per_request):
        batch: list[otlp_trace.Span] = []
        for t in range(first, min(first + per_request, traces)):
            batch += trace_spans(rng, spans, now - (traces - t) * 1_000_000_000)
        req = otlp_service.ExportTraceServiceRequest(
            resource_spans=[
                otlp_trace.ResourceSpans(
                    resource=otlp_resource.Resource(attributes=_attributes(dict(resource))),
                    scope_spans=[otlp_trace.ScopeSpans(spans=batch)],
                )
            ]
        )
        requests.append(req.SerializeToString())
    return requests


def records(count: int, seed: int = 11) -> list[dict[str, Any]]:
    """Evaluation dataset records: ``inputs`` (distinct), ``outputs`` and ``expectations``."""
    rng = random.Random(seed)
    return [
        {
            "inputs": {"question": f"q{i}: {text(rng, 120)}"},
            "outputs": {"answer": text(rng, 200)},
            "expectations": {"expected_facts": [text(rng, 40), text(rng, 40)]},
        }
        for i in range(count)
    ]
