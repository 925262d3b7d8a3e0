"""Requests of the trace, OTLP and assessment workloads (issue 3), built so the generator stays cheap.

A LogSpans or OTLP Export call carries ``traces`` traces of ``spans`` spans each (~1 KB of
attributes per span). The request is built and serialized once (``SpanBatches.template``);
every call then replaces a marker in those bytes with a value unique to (caller, seq), of the
same length: 16 hex characters inside each ``tr-<32 hex>`` id, or 8 of the 16 raw bytes of an
OTLP trace id. The rest of a trace id is a per-workload nonce and the trace's index in the
call, so every call writes new traces and no two workloads (or runs) share one.
"""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from google.protobuf import struct_pb2
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp_service
from opentelemetry.proto.common.v1 import common_pb2 as otlp_common
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp_trace

from mlgenai.v1 import assessment_pb2, assessment_service_pb2 as apb, span_pb2, trace_service_pb2 as tpb

TRACE_SERVICE = "/mlgenai.v1.TraceService/"
ASSESSMENT_SERVICE = "/mlgenai.v1.AssessmentService/"
OTLP_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
EXPERIMENT_HEADER = "x-mlflow-experiment-id"
MARKER_HEX = b"fedcba9876543210"  # 16 of the 32 hex digits of each trace id in a template
MARKER_RAW = bytes.fromhex("f1e2d3c4b5a69788")  # 8 of the 16 bytes of each OTLP trace id
T0_NS = 1_760_000_000_000_000_000  # 2025-10-09: spans of a template start here, 1 s apart per trace
SPAN_TYPES = ("LLM", "RETRIEVER", "TOOL", "CHAT_MODEL", "PARSER", "LLM", "TOOL", "EMBEDDING", "RERANKER")
PROMPT = (
    "You are a support assistant for an online store. Answer the customer's question using only the "
    "retrieved documents below; cite the document ids you used, keep the answer under 120 words, and "
    "say so plainly when the documents do not contain the answer. Never invent order numbers, prices "
    "or delivery dates. Question: {question}\nDocuments: {documents}"
)


def stamp(caller: int, seq: int) -> int:
    """A 64-bit value unique to (caller, seq): 16 bits of caller, 48 of seq."""
    if not (0 <= caller < 1 << 16 and 0 <= seq < 1 << 48):
        raise ValueError(f"caller {caller} or seq {seq} out of range for a trace id stamp")
    return caller << 48 | seq


def trace_id_hex(stamp_value: int, nonce: int, index: int) -> str:
    return f"tr-{stamp_value:016x}{nonce:08x}{index:08x}"


@dataclass(frozen=True)
class SpanSpec:
    """One span of a template, before it becomes a mlgenai or an OTLP span."""

    trace: int  # index of its trace in the request
    span_id: bytes
    parent_id: bytes
    name: str
    span_type: str
    start_ns: int
    end_ns: int
    inputs: Any
    outputs: Any
    attributes: dict[str, Any]


def span_specs(traces: int, spans: int, seed: int) -> Iterator[SpanSpec]:
    """``traces`` traces of ``spans`` spans: a root AGENT span and children of various kinds."""
    rng = random.Random(seed)
    for t in range(traces):
        start = T0_NS + t * 1_000_000_000
        root = rng.randbytes(8)
        question = f"Where is my order #{rng.randrange(10**6):06d}? It was due last {rng.choice(('Monday', 'Friday'))}."
        yield SpanSpec(
            t,
            root,
            b"",
            "support_agent",
            "AGENT",
            start,
            start + 900_000_000,
            {"question": question},
            {"answer": "It ships tomorrow [doc-3]."},
            _attributes(t, 0, rng),
        )
        ids = [root]
        for s in range(1, spans):
            kind = SPAN_TYPES[(s - 1) % len(SPAN_TYPES)]
            begin = start + s * 80_000_000 // max(1, spans // 10)
            ids.append(rng.randbytes(8))
            parent = root if s < 4 else ids[rng.randrange(1, s)]  # a few steps, then nested calls
            yield SpanSpec(
                t,
                ids[-1],
                parent,
                f"{kind.lower()}_{s}",
                kind,
                begin,
                begin + 50_000_000,
                {"query": question[:60], "step": s},
                {"result": f"step {s} done"},
                _attributes(t, s, rng),
            )


def _attributes(trace: int, span: int, rng: random.Random) -> dict[str, Any]:
    """About 1 KB of attributes as JSON: model settings, a prompt, documents, token usage."""
    documents = [f"doc-{rng.randrange(10**5)}" for _ in range(5)]
    attrs: dict[str, Any] = {
        "llm.model_name": "gpt-4o-mini-2024-07-18",
        "llm.temperature": 0.2,
        "llm.max_tokens": 1024,
        "llm.prompt_template": PROMPT,
        "retrieval.documents": documents,
        "http.url": "https://api.example.com/v1/chat/completions",
        "deployment.region": "eu-west-1",
        "app.version": "2.14.1",
        "span.index": span,
        "llm.invocation_parameters": {
            "top_p": 0.95,
            "presence_penalty": 0,
            "frequency_penalty": 0,
            "seed": 42,
            "response_format": "text",
            "stop": ["\n\nHuman:", "\n\nObservation:"],
        },
        "http.user_agent": "python-httpx/0.27.2 openai/1.51.0 (support-agent; +https://example.com/bot)",
        "retrieval.query": f"order status for trace {trace}, step {span}: where is my order and when does it ship",
    }
    if span % 3 == 1:  # an LLM call reporting its usage
        used_in, used_out = 300 + rng.randrange(400), 20 + rng.randrange(200)
        attrs["mlflow.chat.tokenUsage"] = {
            "input_tokens": used_in,
            "output_tokens": used_out,
            "total_tokens": used_in + used_out,
        }
    return attrs


def logspans_request(experiment_id: str, nonce: int, traces: int, spans: int) -> bytes:
    """A serialized LogSpansRequest whose trace ids all contain ``MARKER_HEX``."""
    req = tpb.LogSpansRequest(experiment_id=experiment_id)
    for spec in span_specs(traces, spans, nonce):
        span = req.spans.add(
            trace_id=f"tr-{MARKER_HEX.decode()}{nonce:08x}{spec.trace:08x}",
            span_id=spec.span_id.hex(),
            parent_span_id=spec.parent_id.hex(),
            name=spec.name,
            span_type=spec.span_type,
            start_time_unix_nano=spec.start_ns,
            end_time_unix_nano=spec.end_ns,
            status=span_pb2.SpanStatus(code=span_pb2.SPAN_STATUS_CODE_OK),
        )
        span.inputs.struct_value.update(spec.inputs)
        span.outputs.struct_value.update(spec.outputs)
        span.attributes.update(spec.attributes)
    return _checked(req.SerializeToString(), MARKER_HEX, traces * spans)


def _any_value(value: Any) -> otlp_common.AnyValue:
    """OTLP attribute values as an OpenTelemetry SDK writes them: scalars and arrays typed,
    objects as JSON text (SDK attributes cannot hold maps)."""
    if isinstance(value, list):
        return otlp_common.AnyValue(array_value=otlp_common.ArrayValue(values=[_any_value(v) for v in value]))
    if isinstance(value, bool):
        return otlp_common.AnyValue(bool_value=value)
    if isinstance(value, int):
        return otlp_common.AnyValue(int_value=value)
    if isinstance(value, float):
        return otlp_common.AnyValue(double_value=value)
    if isinstance(value, str):
        return otlp_common.AnyValue(string_value=value)
    return otlp_common.AnyValue(string_value=json.dumps(value, separators=(",", ":")))


def otlp_request(nonce: int, traces: int, spans: int) -> bytes:
    """A serialized ExportTraceServiceRequest whose trace ids all contain ``MARKER_RAW``."""
    req = otlp_service.ExportTraceServiceRequest()
    resource = req.resource_spans.add()
    resource.resource.attributes.add(key="service.name", value=otlp_common.AnyValue(string_value="support-agent"))
    scope = resource.scope_spans.add()
    scope.scope.name = "mlflow.tracing"
    for spec in span_specs(traces, spans, nonce):
        attributes = {
            **spec.attributes,
            "mlflow.spanType": json.dumps(spec.span_type),
            "mlflow.spanInputs": json.dumps(spec.inputs),
            "mlflow.spanOutputs": json.dumps(spec.outputs),
        }
        scope.spans.add(
            trace_id=MARKER_RAW + nonce.to_bytes(4, "big") + spec.trace.to_bytes(4, "big"),
            span_id=spec.span_id,
            parent_span_id=spec.parent_id,
            name=spec.name,
            kind=otlp_trace.Span.SPAN_KIND_INTERNAL,
            start_time_unix_nano=spec.start_ns,
            end_time_unix_nano=spec.end_ns,
            attributes=[otlp_common.KeyValue(key=k, value=_any_value(v)) for k, v in attributes.items()],
            status=otlp_trace.Status(code=otlp_trace.Status.STATUS_CODE_OK),
        )
    return _checked(req.SerializeToString(), MARKER_RAW, traces * spans)


def _checked(payload: bytes, marker: bytes, expected: int) -> bytes:
    found = payload.count(marker)
    if found != expected:  # the marker also occurs elsewhere: replacing it would corrupt the request
        raise AssertionError(f"marker found {found} times in the template, expected {expected}")
    return payload


@dataclass(frozen=True)
class SpanBatches:
    """LogSpans (or, with ``otlp``, OTLP Export) requests of ``traces`` new traces × ``spans`` spans."""

    experiment_id: str
    nonce: int
    traces: int = 100
    spans: int = 10
    otlp: bool = False

    @cached_property
    def template(self) -> bytes:
        if self.otlp:
            return otlp_request(self.nonce, self.traces, self.spans)
        return logspans_request(self.experiment_id, self.nonce, self.traces, self.spans)

    def __call__(self, caller: int, seq: int) -> bytes:
        value = stamp(caller, seq)
        unique = value.to_bytes(8, "big") if self.otlp else b"%016x" % value
        return self.template.replace(MARKER_RAW if self.otlp else MARKER_HEX, unique)

    def trace_ids(self, caller: int, seq: int) -> list[str]:
        """The trace ids of call (caller, seq), as the server names them."""
        return [trace_id_hex(stamp(caller, seq), self.nonce, t) for t in range(self.traces)]


def feedback(trace_id: str, value: float, name: str = "helpfulness") -> assessment_pb2.Assessment:
    return assessment_pb2.Assessment(
        trace_id=trace_id,
        name=name,
        source=assessment_pb2.AssessmentSource(
            source_type=assessment_pb2.ASSESSMENT_SOURCE_TYPE_LLM_JUDGE, source_id="judge-gpt-4o"
        ),
        feedback=assessment_pb2.Feedback(value=struct_pb2.Value(number_value=value)),
        rationale="The answer cites the retrieved order status and stays under the length limit.",
    )


@dataclass(frozen=True)
class CreateAssessments:
    """CreateAssessment requests: feedback on the given traces in turn, optionally with a request_id."""

    trace_ids: tuple[str, ...]
    request_id: bool = True

    def __call__(self, caller: int, seq: int) -> bytes:
        n = caller * 7919 + seq
        req = apb.CreateAssessmentRequest(assessment=feedback(self.trace_ids[n % len(self.trace_ids)], n % 100 / 100))
        if self.request_id:
            req.request_id = str(uuid.uuid4())
        return req.SerializeToString()


def batch_assessments_request(trace_ids: tuple[str, ...], count: int) -> bytes:
    """A BatchCreateAssessments request of ``count`` feedbacks over ``trace_ids`` (no request_id)."""
    items = [feedback(trace_ids[i % len(trace_ids)], i % 100 / 100) for i in range(count)]
    return apb.BatchCreateAssessmentsRequest(assessments=items).SerializeToString()
