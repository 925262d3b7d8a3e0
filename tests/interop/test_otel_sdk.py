"""Interop: the real OpenTelemetry Python SDK exports into the server over OTLP/gRPC (SPEC §3.3).

The SDK's BatchSpanProcessor exports on its own thread: ``force_flush`` waits until the batch is
acknowledged, and the server acknowledges only after its commit, so reading right after is safe.
An in-memory exporter on the same provider records what the SDK sent, to compare with.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import Status, StatusCode

from mlgenai.client import Client
from mlgenai.client.convert import from_struct, from_value
from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as tpb, trace_service_pb2_grpc as tg


def _provider(
    target: str, resource: dict[str, str], headers: tuple[tuple[str, str], ...]
) -> tuple[TracerProvider, InMemorySpanExporter]:
    provider = TracerProvider(resource=Resource.create(resource))
    exporter = OTLPSpanExporter(endpoint=target, insecure=True, headers=headers, timeout=10)
    provider.add_span_processor(BatchSpanProcessor(exporter))
    sent = InMemorySpanExporter()
    provider.add_span_processor(SimpleSpanProcessor(sent))
    return provider, sent


@pytest.fixture
def providers() -> Iterator[list[TracerProvider]]:
    made: list[TracerProvider] = []
    yield made
    for provider in made:
        provider.shutdown()


def _hex(span: ReadableSpan, field: str) -> str:
    context = span.context if field == "span" else span.parent
    assert context is not None
    return f"{context.span_id:016x}"


def test_sdk_exports_a_span_tree_that_get_trace_returns_intact(
    client: Client, target: str, providers: list[TracerProvider]
) -> None:
    exp = client.create_experiment("otel-sdk")["experiment_id"]
    provider, sent = _provider(
        target, {"service.name": "interop-agent", "deployment.environment": "ci"}, (("x-mlflow-experiment-id", exp),)
    )
    providers.append(provider)
    tracer = provider.get_tracer("tests.interop")

    with tracer.start_as_current_span(
        "agent",
        attributes={
            "mlflow.spanType": "AGENT",
            "mlflow.spanInputs": json.dumps({"question": "weather in Paris?"}),
            "mlflow.spanOutputs": json.dumps({"answer": "sunny"}),
            "session.id": "session-42",
            "user.id": "user-1",
            "mlflow.traceTag.team": "search",
        },
    ) as root:
        with tracer.start_as_current_span("llm", attributes={"mlflow.spanType": "LLM", "llm.model": "m-1"}) as llm:
            llm.set_attribute(
                "mlflow.chat.tokenUsage", json.dumps({"input_tokens": 12, "output_tokens": 30, "total_tokens": 42})
            )
            llm.set_attribute("llm.temperatures", [0.0, 0.5])
            with (
                pytest.raises(ValueError),
                tracer.start_as_current_span("tool", attributes={"mlflow.spanType": "TOOL"}),
            ):
                raise ValueError("tool broke")  # recorded as an exception event; the span ends with ERROR
        root.set_status(Status(StatusCode.ERROR, "agent gave up"))

    assert provider.force_flush(10_000)
    expected = {s.name: s for s in sent.get_finished_spans()}
    assert set(expected) == {"agent", "llm", "tool"}
    trace_id = f"tr-{expected['agent'].context.trace_id:032x}"

    got = tg.TraceServiceStub(client.channel).GetTrace(tpb.GetTraceRequest(trace_id=trace_id))
    spans = {s.name: s for s in got.spans}
    assert [s.name for s in got.spans] == ["agent", "llm", "tool"]  # root first, then by start time
    for name, sdk_span in expected.items():
        span = spans[name]
        assert span.trace_id == trace_id
        assert span.span_id == _hex(sdk_span, "span")
        assert span.start_time_unix_nano == sdk_span.start_time and span.end_time_unix_nano == sdk_span.end_time
    assert spans["agent"].parent_span_id == ""
    assert spans["llm"].parent_span_id == spans["agent"].span_id == _hex(expected["llm"], "parent")
    assert spans["tool"].parent_span_id == spans["llm"].span_id == _hex(expected["tool"], "parent")

    agent, llm_span, tool = spans["agent"], spans["llm"], spans["tool"]
    assert [agent.span_type, llm_span.span_type, tool.span_type] == ["AGENT", "LLM", "TOOL"]
    assert agent.status == span_pb2.SpanStatus(code=span_pb2.SPAN_STATUS_CODE_ERROR, message="agent gave up")
    assert llm_span.status.code == span_pb2.SPAN_STATUS_CODE_UNSPECIFIED
    assert tool.status.code == span_pb2.SPAN_STATUS_CODE_ERROR and "tool broke" in tool.status.message
    assert from_value(agent.inputs) == {"question": "weather in Paris?"}
    assert from_value(agent.outputs) == {"answer": "sunny"}
    assert from_struct(agent.attributes) == {
        "session.id": "session-42",
        "user.id": "user-1",
        "mlflow.traceTag.team": "search",
    }
    assert from_struct(llm_span.attributes) == {
        "llm.model": "m-1",
        "mlflow.chat.tokenUsage": json.dumps({"input_tokens": 12, "output_tokens": 30, "total_tokens": 42}),
        "llm.temperatures": [0, 0.5],
    }
    (event,) = tool.events
    sdk_event = expected["tool"].events[0]
    assert event.name == "exception" and event.time_unix_nano == sdk_event.timestamp
    event_attrs = from_struct(event.attributes)
    assert event_attrs["exception.type"] == "ValueError" and event_attrs["exception.message"] == "tool broke"
    assert "Traceback" in event_attrs["exception.stacktrace"]

    info = got.info
    assert info.experiment_id == exp and info.state == trace_pb2.TRACE_STATE_ERROR
    assert info.request_time.ToNanoseconds() // 1_000_000 == expected["agent"].start_time // 1_000_000
    assert info.session_id == "session-42" and info.user_id == "user-1"
    assert info.token_usage == trace_pb2.TokenUsage(input_tokens=12, output_tokens=30, total_tokens=42)
    assert json.loads(info.request_preview) == {"question": "weather in Paris?"}
    assert info.span_count == 3 and info.name == "agent"
    assert info.tags["service.name"] == "interop-agent" and info.tags["deployment.environment"] == "ci"
    assert info.tags["team"] == "search"
    assert not [k for k in info.tags if k.startswith("telemetry.sdk.")]


def test_sdk_names_the_experiment_by_resource_attribute(
    client: Client, target: str, providers: list[TracerProvider]
) -> None:
    exp = client.create_experiment("otel-sdk-resource")["experiment_id"]
    provider, sent = _provider(target, {"service.name": "svc", "mlflow.experimentId": exp}, ())
    providers.append(provider)
    tracer = provider.get_tracer("tests.interop")
    for i in range(20):  # several traces, one export batch
        with tracer.start_as_current_span(f"request-{i}"), tracer.start_as_current_span("step"):
            pass
    assert provider.force_flush(10_000)
    trace_ids = sorted({f"tr-{s.context.trace_id:032x}" for s in sent.get_finished_spans()})
    assert len(trace_ids) == 20
    found = tg.TraceServiceStub(client.channel).BatchGetTraces(tpb.BatchGetTracesRequest(trace_ids=trace_ids))
    assert sorted(t.info.trace_id for t in found.traces) == trace_ids
    assert {(t.info.experiment_id, t.info.span_count, t.info.state) for t in found.traces} == {
        (exp, 2, trace_pb2.TRACE_STATE_OK)
    }
