"""OTLP over gRPC (SPEC §3.3): ``opentelemetry.proto.collector.trace.v1.TraceService/Export``.

Requests are built from the ``opentelemetry.proto`` messages directly and read back with GetTrace.
"""

from __future__ import annotations

import base64
import json
import math
import os
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from opentelemetry.proto.collector.trace.v1 import (
    trace_service_pb2 as otlp_pb,
    trace_service_pb2_grpc as otlp_grpc,
)
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2 as ot

from mlgenai.client import Client, span as new_span
from mlgenai.client.convert import from_struct, from_value
from mlgenai.client.errors import from_rpc_error
from mlgenai.v1 import span_pb2, trace_pb2, trace_service_pb2 as tpb, trace_service_pb2_grpc as tg
from store.orm.base import table
from store.orm.traces import SpanRow
from store.uow import Database
from tests.helpers import count_rows, expect_error, snapshot

HEADER = "x-mlflow-experiment-id"
T0 = 1_750_000_000_000_000_000  # ns


# -- building OTLP messages -------------------------------------------------------------------


def anyvalue(value: Any) -> common_pb2.AnyValue:
    if isinstance(value, common_pb2.AnyValue):
        return value
    if value is None:
        return common_pb2.AnyValue()
    if isinstance(value, bool):
        return common_pb2.AnyValue(bool_value=value)
    if isinstance(value, int):
        return common_pb2.AnyValue(int_value=value)
    if isinstance(value, float):
        return common_pb2.AnyValue(double_value=value)
    if isinstance(value, str):
        return common_pb2.AnyValue(string_value=value)
    if isinstance(value, bytes):
        return common_pb2.AnyValue(bytes_value=value)
    if isinstance(value, dict):
        return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs(value)))
    return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=[anyvalue(v) for v in value]))


def kvs(attrs: dict[str, Any]) -> list[common_pb2.KeyValue]:
    return [common_pb2.KeyValue(key=k, value=anyvalue(v)) for k, v in attrs.items()]


def tid() -> bytes:
    return os.urandom(16)


def sid() -> bytes:
    return os.urandom(8)


def mk_span(
    trace: bytes,
    span: bytes,
    parent: bytes = b"",
    name: str = "s",
    start: int = T0,
    end: int | None = None,
    attrs: dict[str, Any] | None = None,
    events: list[ot.Span.Event] | None = None,
    code: int = 0,
    message: str = "",
) -> ot.Span:
    return ot.Span(
        trace_id=trace,
        span_id=span,
        parent_span_id=parent,
        name=name,
        kind=ot.Span.SPAN_KIND_INTERNAL,
        start_time_unix_nano=start,
        end_time_unix_nano=start + 1_000_000 if end is None else end,
        attributes=kvs(attrs or {}),
        events=events or [],
        status=ot.Status(code=code, message=message),  # type: ignore[arg-type]
    )


def mk_request(*groups: tuple[dict[str, Any], list[ot.Span]]) -> otlp_pb.ExportTraceServiceRequest:
    """One ResourceSpans per (resource attributes, spans) group."""
    return otlp_pb.ExportTraceServiceRequest(
        resource_spans=[
            ot.ResourceSpans(
                resource=resource_pb2.Resource(attributes=kvs(resource)),
                scope_spans=[ot.ScopeSpans(scope=common_pb2.InstrumentationScope(name="test"), spans=spans)],
            )
            for resource, spans in groups
        ]
    )


class Api:
    def __init__(self, client: Client) -> None:
        self.client = client
        self.otlp = otlp_grpc.TraceServiceStub(client.channel)
        self.traces = tg.TraceServiceStub(client.channel)

    def export(
        self, request: otlp_pb.ExportTraceServiceRequest, experiment_id: str | None = None
    ) -> otlp_pb.ExportTraceServiceResponse:
        metadata = ((HEADER, experiment_id),) if experiment_id is not None else ()
        response: otlp_pb.ExportTraceServiceResponse = self.otlp.Export(request, metadata=metadata)
        return response

    def trace(self, trace: bytes) -> trace_pb2.Trace:
        got: trace_pb2.Trace = self.traces.GetTrace(tpb.GetTraceRequest(trace_id="tr-" + trace.hex()))
        return got

    def experiment(self, name: str = "otlp") -> str:
        return str(self.client.create_experiment(name)["experiment_id"])


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client)


def by_name(trace: trace_pb2.Trace) -> dict[str, span_pb2.Span]:
    return {s.name: s for s in trace.spans}


# -- mapping ----------------------------------------------------------------------------------


def test_maps_ids_names_times_status_inputs_outputs_and_type(api: Api) -> None:
    exp = api.experiment()
    trace, root, child = tid(), sid(), sid()
    spans = [
        mk_span(
            trace,
            root,
            name="agent",
            end=T0 + 5_000_000,
            attrs={
                "mlflow.spanInputs": json.dumps({"question": "2+2?", "n": [1, 2.5]}),
                "mlflow.spanOutputs": json.dumps("4"),
                "mlflow.spanType": "AGENT",
            },
            code=1,
        ),
        mk_span(
            trace,
            child,
            parent=root,
            name="llm",
            start=T0 + 1_000_000,
            end=T0 + 4_000_000,
            attrs={
                "mlflow.spanInputs": "plain text, not JSON",
                "mlflow.spanOutputs": "{broken",
                "mlflow.spanType": "LLM",
            },
            code=2,
            message="rate limited",
        ),
    ]
    response = api.export(mk_request(({}, spans)), exp)
    assert not response.HasField("partial_success")

    got = api.trace(trace)
    assert got.info.trace_id == "tr-" + trace.hex() and got.info.experiment_id == exp
    assert [s.name for s in got.spans] == ["agent", "llm"]  # root first
    agent, llm = got.spans
    assert agent.trace_id == llm.trace_id == "tr-" + trace.hex()
    assert (agent.span_id, agent.parent_span_id) == (root.hex(), "")
    assert (llm.span_id, llm.parent_span_id) == (child.hex(), root.hex())
    assert (agent.start_time_unix_nano, agent.end_time_unix_nano) == (T0, T0 + 5_000_000)
    assert (llm.start_time_unix_nano, llm.end_time_unix_nano) == (T0 + 1_000_000, T0 + 4_000_000)
    assert agent.status.code == span_pb2.SPAN_STATUS_CODE_OK and agent.status.message == ""
    assert llm.status == span_pb2.SpanStatus(code=span_pb2.SPAN_STATUS_CODE_ERROR, message="rate limited")
    assert (agent.span_type, llm.span_type) == ("AGENT", "LLM")
    assert from_value(agent.inputs) == {"question": "2+2?", "n": [1, 2.5]}
    assert from_value(agent.outputs) == "4"
    assert from_value(llm.inputs) == "plain text, not JSON"  # not JSON: kept as the string
    assert from_value(llm.outputs) == "{broken"
    for span in got.spans:  # mapped attributes become fields; the MLflow trace id is recomputed
        assert not {"mlflow.spanInputs", "mlflow.spanOutputs", "mlflow.spanType", "mlflow.traceRequestId"} & set(
            span.attributes.fields
        )
    info = got.info
    assert info.state == trace_pb2.TRACE_STATE_OK  # the root span's status
    assert info.request_time.ToNanoseconds() == T0 and info.execution_duration.ToMilliseconds() == 5
    assert json.loads(info.request_preview) == {"question": "2+2?", "n": [1, 2.5]} and info.response_preview == "4"
    assert info.name == "agent" and info.span_count == 2


def test_attributes_of_every_any_value_kind(api: Api) -> None:
    exp = api.experiment()
    trace, root = tid(), sid()
    attrs = {
        "str": "hello",
        "empty_str": "",
        "bool": True,
        "int": -42,
        "big_int": 2**62,
        "double": 0.25,
        "whole_double": 3.0,
        "nan": math.nan,
        "inf": math.inf,
        "neg_inf": -math.inf,
        "array": ["a", 1, False, 1.5],
        "nested": {"k": "v", "list": [{"deep": [1, 2]}], "none": None},
        "bytes": b"\x00\x01\xfe\xff",
        "unset": None,
        "json_text_stays_text": '{"a": 1}',
    }
    event_attrs = {"exception.type": "ValueError", "exception.message": "bad", "count": 2, "tags": ["x"]}
    events = [
        ot.Span.Event(name="exception", time_unix_nano=T0 + 10, attributes=kvs(event_attrs)),
        ot.Span.Event(name="retry", time_unix_nano=T0 + 20),
    ]
    api.export(mk_request(({}, [mk_span(trace, root, attrs=attrs, events=events)])), exp)

    (span,) = api.trace(trace).spans
    assert from_struct(span.attributes) == {
        "str": "hello",
        "empty_str": "",
        "bool": True,
        "int": -42,
        "big_int": str(2**62),  # beyond 2**53 a JSON number is not exact: decimal text
        "double": 0.25,
        "whole_double": 3,
        "nan": "NaN",
        "inf": "Infinity",
        "neg_inf": "-Infinity",
        "array": ["a", 1, False, 1.5],
        "nested": {"k": "v", "list": [{"deep": [1, 2]}], "none": None},
        "bytes": base64.b64encode(b"\x00\x01\xfe\xff").decode(),
        "unset": None,
        "json_text_stays_text": '{"a": 1}',  # only MLflow's reserved attributes are JSON-decoded
    }
    assert [(e.name, e.time_unix_nano, from_struct(e.attributes)) for e in span.events] == [
        ("exception", T0 + 10, event_attrs),
        ("retry", T0 + 20, {}),
    ]


def test_json_text_a_value_cannot_hold_stays_text(api: Api) -> None:
    """Infinities, and nesting so deep that protobuf readers would refuse the stored span."""
    exp = api.experiment()
    trace = tid()
    deep, ok = "[" * 31 + "]" * 31, "[" * 30 + "]" * 30
    attrs = {"mlflow.spanInputs": '{"x": 1e999}', "mlflow.spanOutputs": "NaN"}
    mlflow_sdk = {"mlflow.traceRequestId": '"tr-x"', "mlflow.spanInputs": deep, "mlflow.spanOutputs": ok, "a": deep}
    spans = [mk_span(trace, sid(), name="plain", attrs=attrs), mk_span(trace, sid(), name="sdk", attrs=mlflow_sdk)]
    api.export(mk_request(({}, spans)), exp)
    got = by_name(api.trace(trace))
    plain, decoded = got["plain"], got["sdk"]
    assert (from_value(plain.inputs), from_value(plain.outputs)) == ('{"x": 1e999}', "NaN")
    assert from_value(decoded.inputs) == deep and from_struct(decoded.attributes) == {"a": deep}
    nested = from_value(decoded.outputs)
    for _ in range(29):
        (nested,) = nested
    assert nested == []
    batch = api.traces.BatchGetTraces(tpb.BatchGetTracesRequest(trace_ids=["tr-" + trace.hex()]))
    assert len(batch.traces[0].spans) == 2


def test_attribute_filters_see_the_converted_values(api: Api) -> None:
    exp = api.experiment()
    trace = tid()
    attrs = {"model": "gpt", "mlflow.spanType": "LLM", "mlflow.spanInputs": '{"prompt": "needle"}'}
    api.export(mk_request(({}, [mk_span(trace, sid(), name="call", attrs=attrs)])), exp)
    for expr in (
        "span.attributes.model = 'gpt'",
        "span.type = 'LLM'",
        "span.name = 'call'",
        "trace.text LIKE '%needle%'",
    ):
        found = api.traces.SearchTraces(tpb.SearchTracesRequest(experiment_ids=[exp], filter=expr))
        assert [t.trace_id for t in found.traces] == ["tr-" + trace.hex()], expr


def test_numbers_are_stored_alike_whether_exported_or_logged(api: Api, database: Database) -> None:
    """A Struct holds doubles: 2.0 reads back as 2, integers beyond 2**53 as doubles. What filters
    see of an exported span must be what they see of the same span sent through LogSpans."""
    exp = api.experiment()
    exported, logged = "tr-" + tid().hex(), "tr-" + tid().hex()
    attrs = {"whole": 2.0, "half": 0.5, "mlflow.spanInputs": '{"n": 3.0, "big": 123456789012345678901}'}
    api.export(mk_request(({}, [mk_span(bytes.fromhex(exported[3:]), sid(), name="s", attrs=attrs)])), exp)
    native, inputs = {"whole": 2, "half": 0.5}, {"n": 3, "big": 1.2345678901234568e20}
    api.client.log_spans(exp, [new_span(logged, "s", attributes=native, inputs=inputs)])
    for expr in ("span.attributes.whole = '2'", "span.attributes.half = '0.5'"):
        found = api.traces.SearchTraces(tpb.SearchTracesRequest(experiment_ids=[exp], filter=expr))
        assert sorted(t.trace_id for t in found.traces) == sorted([exported, logged]), expr
    spans = table(SpanRow)
    with database.engine.connect() as conn:
        stored = dict(conn.execute(sa.select(spans.c.trace_id, spans.c.payload)).all())
    assert stored[exported]["attributes"] == stored[logged]["attributes"] == native
    assert stored[exported]["inputs"] == stored[logged]["inputs"]
    assert stored[logged]["inputs"]["n"] == 3 and isinstance(stored[logged]["inputs"]["n"], int)


def test_spans_from_mlflows_sdk_have_every_attribute_json_decoded(api: Api) -> None:
    """MLflow's SDK JSON-encodes every attribute value and sets ``mlflow.traceRequestId``."""
    exp = api.experiment()
    trace, root = tid(), sid()
    raw = {
        "mlflow.traceRequestId": '"tr-whatever"',
        "mlflow.spanType": '"CHAIN"',
        "mlflow.spanInputs": '{"x": 1}',
        "mlflow.spanOutputs": '"done"',  # JSON text once: the string "done"
        "session.id": '"sess-9"',
        "user.id": '"alice"',
        "retries": "3",
        "note": "not json",
        "mlflow.chat.tokenUsage": '{"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}',
    }
    api.export(mk_request(({}, [mk_span(trace, root, attrs=raw)])), exp)
    got = api.trace(trace)
    (span,) = got.spans
    assert span.span_type == "CHAIN" and from_value(span.inputs) == {"x": 1} and from_value(span.outputs) == "done"
    assert span.trace_id == "tr-" + trace.hex()  # mlflow.traceRequestId is recomputed, not taken
    assert from_struct(span.attributes) == {
        "session.id": "sess-9",
        "user.id": "alice",
        "retries": 3,
        "note": "not json",
        "mlflow.chat.tokenUsage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3},
    }
    assert (got.info.session_id, got.info.user_id, got.info.token_usage.total_tokens) == ("sess-9", "alice", 3)


# -- tags, session, user, token usage ----------------------------------------------------------


def test_resource_attributes_and_root_trace_tags_become_trace_tags(api: Api) -> None:
    exp = api.experiment()
    trace, root, child = tid(), sid(), sid()
    resource = {
        "service.name": "checkout",
        "deployment.environment": "prod",
        "service.instance.count": 3,
        "host.tags": ["a", "b"],
        "telemetry.sdk.name": "opentelemetry",
        "telemetry.sdk.version": "1.45.2",
        "mlflow.experimentId": exp,
        "mlflow.other": "x",
    }
    spans = [
        mk_span(
            trace,
            root,
            name="root span",
            attrs={
                "mlflow.traceTag.release": "v2",
                "mlflow.traceTag.deployment.environment": "canary",  # wins over the resource attribute
                "mlflow.traceTag.mlflow.traceName": "checkout flow",
            },
        ),
        mk_span(trace, child, parent=root, attrs={"mlflow.traceTag.ignored": "child spans carry no trace tags"}),
    ]
    api.export(mk_request((resource, spans)), exp)
    info = api.trace(trace).info
    assert dict(info.tags) == {
        "service.name": "checkout",
        "deployment.environment": "canary",
        "service.instance.count": "3",
        "host.tags": '["a","b"]',
        "release": "v2",
        "mlflow.traceName": "checkout flow",
    }
    assert info.name == "checkout flow"
    found = api.traces.SearchTraces(tpb.SearchTracesRequest(experiment_ids=[exp], filter="tags.release = 'v2'"))
    assert [t.trace_id for t in found.traces] == [info.trace_id]

    # Later exports add resource tags the trace lacks, and change none it has.
    api.traces.SetTraceTag(tpb.SetTraceTagRequest(trace_id=info.trace_id, key="service.name", value="renamed"))
    later = mk_span(trace, sid(), parent=root, name="late child")
    api.export(mk_request(({**resource, "service.version": "9"}, [later])), exp)
    tags = api.trace(trace).info.tags
    assert (tags["service.name"], tags["deployment.environment"], tags["service.version"]) == ("renamed", "canary", "9")


def test_tags_that_break_the_limits_are_left_out_and_reported(api: Api) -> None:
    exp = api.experiment()
    trace = tid()
    resource = {"service.name": "svc", "huge": "x" * 8_001, "k" * 251: "long key"}
    response = api.export(mk_request((resource, [mk_span(trace, sid())])), exp)
    assert response.partial_success.rejected_spans == 0
    message = response.partial_success.error_message
    assert "2 tags left out" in message and "resource_spans[0].resource.attributes[huge]" in message
    assert dict(api.trace(trace).info.tags) == {"service.name": "svc"}


def test_a_new_trace_takes_up_to_the_tag_limit_from_one_export(api: Api, database: Database) -> None:
    """A trace the export creates: its resource tags and root span tags together, at most 1,000
    (``mlflow.traceTag.k0`` and the resource attribute ``k0`` are one tag)."""
    exp = api.experiment()
    resource = {f"k{i}": "r" for i in range(600)}
    root_tags = {f"mlflow.traceTag.k{i}": "t" for i in range(200, 600)}  # all already named by the resource
    full, over = tid(), tid()
    api.export(mk_request((resource, [mk_span(full, sid(), attrs={**root_tags, "mlflow.traceTag.k999": "t"})])), exp)
    tags = api.trace(full).info.tags
    assert len(tags) == 601 and tags["k0"] == "r" and tags["k200"] == "t"
    big = {f"k{i}": "r" for i in range(1_000)}
    api.export(mk_request((big, [mk_span(tid(), sid())])), exp)  # exactly the limit
    before = snapshot(database, "traces", "spans", "trace_tags")
    request = mk_request((big, [mk_span(over, sid(), attrs={"mlflow.traceTag.one-more": "t"})]))
    err = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_TAGS", lambda: api.export(request, exp))
    assert "1001 tags" in str(err)
    assert snapshot(database, "traces", "spans", "trace_tags") == before


def test_an_export_cannot_take_a_stored_trace_over_the_tag_limit(api: Api, database: Database) -> None:
    exp = api.experiment()
    trace, root = tid(), sid()
    api.export(mk_request(({f"a{i}": "v" for i in range(990)}, [mk_span(trace, root)])), exp)
    before = snapshot(database, "traces", "spans", "trace_tags")
    later = mk_request(({f"b{i}": "v" for i in range(11)}, [mk_span(trace, sid(), parent=root, name="child")]))
    err = expect_error(grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_TAGS", lambda: api.export(later, exp))
    assert "1001 tags" in str(err)
    assert snapshot(database, "traces", "spans", "trace_tags") == before
    fits = mk_request(({f"b{i}": "v" for i in range(10)}, [mk_span(trace, sid(), parent=root, name="child")]))
    assert api.export(fits, exp).partial_success.rejected_spans == 0
    assert len(api.trace(trace).info.tags) == 1_000


def test_session_user_and_token_usage_are_promoted(api: Api) -> None:
    exp = api.experiment()
    trace, root, llm1, llm2 = tid(), sid(), sid(), sid()
    spans = [
        mk_span(trace, root, attrs={"session.id": "conv-1", "user.id": "u-7"}),
        mk_span(trace, llm1, parent=root, attrs={"mlflow.chat.tokenUsage": '{"input_tokens": 10, "output_tokens": 5}'}),
        mk_span(
            trace,
            llm2,
            parent=root,
            attrs={"mlflow.chat.tokenUsage": {"input_tokens": 1, "output_tokens": 2, "total_tokens": 3}},
        ),
    ]
    api.export(mk_request(({}, spans)), exp)
    info = api.trace(trace).info
    assert (info.session_id, info.user_id) == ("conv-1", "u-7")
    assert info.token_usage == trace_pb2.TokenUsage(input_tokens=11, output_tokens=7, total_tokens=18)
    found = api.traces.SearchTraces(tpb.SearchTracesRequest(experiment_ids=[exp], filter="session_id = 'conv-1'"))
    assert [t.trace_id for t in found.traces] == [info.trace_id]


def test_a_trace_exported_in_pieces_is_completed_by_its_root(api: Api) -> None:
    """BatchSpanProcessor sends children before their parent ends: the trace stays IN_PROGRESS."""
    exp = api.experiment()
    trace, root, child = tid(), sid(), sid()
    api.export(mk_request(({"service.name": "a"}, [mk_span(trace, child, parent=root, name="child")])), exp)
    assert api.trace(trace).info.state == trace_pb2.TRACE_STATE_IN_PROGRESS
    api.export(mk_request(({"service.name": "a"}, [mk_span(trace, root, name="root", code=2)])), exp)
    got = api.trace(trace)
    assert got.info.state == trace_pb2.TRACE_STATE_ERROR and [s.name for s in got.spans] == ["root", "child"]
    assert got.info.tags["service.name"] == "a"


# -- experiment --------------------------------------------------------------------------------


def test_experiment_from_the_header_wins_over_the_resource_attribute(api: Api) -> None:
    header_exp, attr_exp = api.experiment("by-header"), api.experiment("by-attribute")
    trace, other = tid(), tid()
    api.export(mk_request(({"mlflow.experimentId": attr_exp}, [mk_span(trace, sid())])), header_exp)
    assert api.trace(trace).info.experiment_id == header_exp
    api.export(mk_request(({"mlflow.experimentId": attr_exp}, [mk_span(other, sid())])), "")  # empty: no header
    assert api.trace(other).info.experiment_id == attr_exp


def test_experiment_from_the_resource_attribute(api: Api) -> None:
    first, second = api.experiment("first"), api.experiment("second")
    t1, t2, t3 = tid(), tid(), tid()
    request = mk_request(
        ({"mlflow.experimentId": first}, [mk_span(t1, sid())]),
        ({"mlflow.experimentId": int(second)}, [mk_span(t2, sid())]),  # an int attribute works too
        ({}, []),  # a resource without spans needs no experiment
    )
    api.export(request)
    api.export(mk_request(({"mlflow.experimentId": second}, [mk_span(t3, sid())])))
    assert [api.trace(t).info.experiment_id for t in (t1, t2, t3)] == [first, second, second]


def test_no_experiment_is_invalid_argument(api: Api, database: Database) -> None:
    request = mk_request(({"service.name": "x"}, [mk_span(tid(), sid())]))
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, "EXPERIMENT_REQUIRED", lambda: api.export(request), HEADER)
    assert "x-mlflow-experiment-id" in str(err) and "mlflow.experimentId" in str(err)
    # One resource naming its experiment does not cover another that does not.
    exp = api.experiment("named")
    mixed = mk_request(({"mlflow.experimentId": exp}, [mk_span(tid(), sid())]), ({}, [mk_span(tid(), sid())]))
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, "EXPERIMENT_REQUIRED", lambda: api.export(mixed))
    assert count_rows(database, "traces") == 0


def test_malformed_experiment_ids_are_invalid_argument(api: Api) -> None:
    request = mk_request(({}, [mk_span(tid(), sid())]))
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", lambda: api.export(request, "abc"), HEADER)
    bad_attr = mk_request(({"mlflow.experimentId": "x1"}, [mk_span(tid(), sid())]))
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        lambda: api.export(bad_attr),
        "resource_spans[0].resource.attributes[mlflow.experimentId]",
    )


def test_unknown_or_deleted_experiment_fails_the_call(api: Api, database: Database) -> None:
    request = mk_request(({}, [mk_span(tid(), sid())]))
    expect_error(grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: api.export(request, "424242"))
    exp = api.experiment()
    api.client.delete_experiment(exp)
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: api.export(request, exp))
    # Also when every span is rejected: the experiment is still checked.
    broken = mk_request(({}, [mk_span(tid(), b"")]))
    expect_error(grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: api.export(broken, "424242"))
    assert count_rows(database, "traces") == 0 and count_rows(database, "spans") == 0


def test_a_trace_of_another_experiment_fails_the_call_and_writes_nothing(api: Api, database: Database) -> None:
    owner, other = api.experiment("owner"), api.experiment("other")
    trace = tid()
    api.export(mk_request(({}, [mk_span(trace, sid(), name="first")])), owner)
    before = snapshot(database, "traces", "spans", "trace_tags")
    request = mk_request(({"service.name": "x"}, [mk_span(tid(), sid()), mk_span(trace, sid(), name="intruder")]))
    expect_error(grpc.StatusCode.FAILED_PRECONDITION, "TRACE_IN_OTHER_EXPERIMENT", lambda: api.export(request, other))
    assert snapshot(database, "traces", "spans", "trace_tags") == before


# -- partial success, idempotency ----------------------------------------------------------------


def test_invalid_spans_are_rejected_and_counted_the_valid_ones_stored(api: Api, database: Database) -> None:
    exp = api.experiment()
    trace, root = tid(), sid()
    bad = [
        mk_span(trace[:15], sid(), name="short trace id"),
        mk_span(bytes(16), sid(), name="zero trace id"),
        mk_span(trace, bytes(8), name="zero span id"),
        mk_span(trace, sid(), parent=b"\x01\x02", name="short parent"),
        mk_span(trace, sid(), name=""),
        mk_span(trace, sid(), name="ends before it starts", start=T0, end=T0 - 1),
        mk_span(trace, sid(), name="no start", start=0, end=T0),
        mk_span(trace, sid(), name="x" * 1_001),
        mk_span(trace, sid(), name="status code 7", code=7),
        mk_span(trace, sid(), name="start beyond int64", start=2**63, end=2**63 + 1),
        mk_span(trace, sid(), name="NUL in attributes", attrs={"a": "x\x00y"}),
    ]
    good = [mk_span(trace, root, name="root"), mk_span(trace, sid(), parent=root, name="child")]
    request = mk_request(({"service.name": "svc"}, [bad[0], good[0], *bad[1:], good[1]]))
    response = api.export(request, exp)

    assert response.partial_success.rejected_spans == len(bad)
    message = response.partial_success.error_message
    assert message.startswith(f"{len(bad)} of {len(bad) + 2} spans rejected: ")
    assert "resource_spans[0].scope_spans[0].spans[0].trace_id: 16 bytes" in message
    assert "and 6 more" in message  # the first five problems are quoted
    got = api.trace(trace)
    assert [s.name for s in got.spans] == ["root", "child"] and got.info.span_count == 2
    assert got.info.tags["service.name"] == "svc"
    assert count_rows(database, "spans") == 2


SPAN_RULES = {  # a span breaking one rule: (the problem as error_message quotes it)
    "parent is the span itself": ("parent_span_id", "empty, or 16 lowercase hex characters other than span_id"),
    "no name": ("name", "required"),
    "NUL in the name": ("name", "must not contain the NUL character"),
    "span type too long": ("span_type", "at most 64 characters (got 65)"),
    "status message too long": ("status.message", "at most 8000 characters (got 8001)"),
    "NUL in the status message": ("status.message", "must not contain the NUL character"),
    "attribute key too long": ("attributes", "keys are at most 250 characters"),
    "event without a name": ("events[1].name", "required"),
    "event name too long": ("events[0].name", "at most 1000 characters (got 1001)"),
    "ends before it starts": ("end_time_unix_nano", "0 (running) or not before start_time_unix_nano"),
    "status code 7": ("status.code", "UNSET, OK or ERROR"),
}


def _breaking(rule: str, trace: bytes) -> ot.Span:
    span = sid()
    event = ot.Span.Event(name="e", time_unix_nano=T0)
    return {
        "parent is the span itself": lambda: mk_span(trace, span, parent=span),
        "no name": lambda: mk_span(trace, span, name=""),
        "NUL in the name": lambda: mk_span(trace, span, name="a\x00b"),
        "span type too long": lambda: mk_span(trace, span, attrs={"mlflow.spanType": "T" * 65}),
        "status message too long": lambda: mk_span(trace, span, code=2, message="m" * 8_001),
        "NUL in the status message": lambda: mk_span(trace, span, code=2, message="a\x00b"),
        "attribute key too long": lambda: mk_span(trace, span, attrs={"k" * 251: 1}),
        "event without a name": lambda: mk_span(trace, span, events=[event, ot.Span.Event(time_unix_nano=T0)]),
        "event name too long": lambda: mk_span(trace, span, events=[ot.Span.Event(name="e" * 1_001)]),
        "ends before it starts": lambda: mk_span(trace, span, start=T0, end=T0 - 1),
        "status code 7": lambda: mk_span(trace, span, code=7),
    }[rule]()


@pytest.mark.parametrize("rule", sorted(SPAN_RULES))
def test_each_span_rule_rejects_the_span_by_its_field(api: Api, database: Database, rule: str) -> None:
    """LogSpans' rules, each broken alone, named the way LogSpans names them; the span next to
    the broken one is stored."""
    exp = api.experiment()
    trace, root = tid(), sid()
    request = mk_request(({}, [mk_span(trace, root, name="root"), _breaking(rule, trace)]))
    response = api.export(request, exp)

    field, problem = SPAN_RULES[rule]
    assert response.partial_success.rejected_spans == 1
    assert response.partial_success.error_message == (
        f"1 of 2 spans rejected: resource_spans[0].scope_spans[0].spans[1].{field}: {problem}"
    )
    assert [s.name for s in api.trace(trace).spans] == ["root"]
    assert count_rows(database, "spans") == 1


def test_a_span_breaking_several_rules_is_told_all_of_them(api: Api) -> None:
    exp = api.experiment()
    trace, span = tid(), sid()
    response = api.export(mk_request(({}, [mk_span(trace, span, parent=span, name="", code=9)])), exp)
    at = "resource_spans[0].scope_spans[0].spans[0]"
    assert response.partial_success.error_message == (
        f"1 of 1 spans rejected: {at}.parent_span_id: {SPAN_RULES['parent is the span itself'][1]}; "
        f"{at}.name: required; {at}.status.code: UNSET, OK or ERROR"
    )


def test_every_span_rejected_stores_nothing(api: Api, database: Database) -> None:
    exp = api.experiment()
    response = api.export(mk_request(({}, [mk_span(tid(), sid(), name=""), mk_span(b"", sid())])), exp)
    assert response.partial_success.rejected_spans == 2
    assert count_rows(database, "traces") == 0


def test_empty_request_succeeds_and_needs_no_experiment(api: Api) -> None:
    assert api.export(otlp_pb.ExportTraceServiceRequest()) == otlp_pb.ExportTraceServiceResponse()


def test_more_spans_than_a_call_takes_is_invalid_argument(api: Api, database: Database) -> None:
    exp = api.experiment()
    trace = tid()
    spans = [mk_span(trace, i.to_bytes(8, "big")) for i in range(1, 10_002)]
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        lambda: api.export(mk_request(({}, spans[:5_000]), ({}, spans[5_000:])), exp),
        "resource_spans",
    )
    assert count_rows(database, "spans") == 0


def test_re_export_is_idempotent(api: Api, database: Database) -> None:
    exp = api.experiment()
    trace, root = tid(), sid()
    request = mk_request(
        (
            {"service.name": "svc"},
            [
                mk_span(trace, root, name="root", attrs={"mlflow.traceTag.k": "v", "session.id": "s"}),
                mk_span(trace, sid(), parent=root, name="llm", attrs={"mlflow.chat.tokenUsage": '{"input_tokens": 2}'}),
            ],
        )
    )
    api.export(request, exp)
    first = api.trace(trace)
    counts = [count_rows(database, t) for t in ("traces", "spans", "trace_tags")]
    api.export(request, exp)
    assert api.trace(trace) == first
    assert [count_rows(database, t) for t in ("traces", "spans", "trace_tags")] == counts
    assert first.info.token_usage.total_tokens == 2 and first.info.span_count == 2


def test_a_batch_of_many_traces_in_one_call(api: Api, database: Database) -> None:
    exp = api.experiment()
    spans = []
    traces = [tid() for _ in range(50)]
    for trace in traces:
        root = sid()
        spans.append(mk_span(trace, root, name="root"))
        spans.extend(mk_span(trace, sid(), parent=root, name=f"c{i}") for i in range(9))
    response = api.export(mk_request(({"service.name": "bulk"}, spans)), exp)
    assert not response.HasField("partial_success")
    assert count_rows(database, "spans") == 500 and count_rows(database, "traces") == 50
    assert count_rows(database, "trace_tags", "key = 'service.name'") == 50
    infos = api.traces.BatchGetTraces(
        tpb.BatchGetTracesRequest(trace_ids=["tr-" + t.hex() for t in traces], include_spans=False)
    ).traces
    assert {t.info.span_count for t in infos} == {10}


# -- the server around it ------------------------------------------------------------------------


def test_export_is_listed_by_reflection_and_health(target: str) -> None:
    from grpc_health.v1 import health_pb2, health_pb2_grpc
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    service = "opentelemetry.proto.collector.trace.v1.TraceService"
    with grpc.insecure_channel(target) as channel:
        health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
        assert health.status == health_pb2.HealthCheckResponse.SERVING
        stub = reflection_pb2_grpc.ServerReflectionStub(channel)
        responses = list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    assert service in {s.name for s in responses[0].list_services_response.service}


def test_bytes_that_are_no_export_request_are_invalid_argument_and_store_nothing(
    api: Api, database: Database, target: str
) -> None:
    """The server reads the request's bytes itself (``server.otlp.plain_spans``): what a parser
    refuses is INVALID_ARGUMENT, not grpc's INTERNAL "Exception deserializing request"."""
    exp = api.experiment()
    good = mk_request(({}, [mk_span(tid(), sid(), name="n\u00e9")])).SerializeToString()
    not_utf8 = good.replace("n\u00e9".encode(), b"n\xff")  # a span name that is not UTF-8, same length
    assert not_utf8 != good
    before = snapshot(database, "traces", "spans", "trace_tags")
    with grpc.insecure_channel(target) as channel:
        raw: Any = channel.unary_unary("/opentelemetry.proto.collector.trace.v1.TraceService/Export")

        def export(data: bytes) -> Any:
            try:
                return raw(data, metadata=((HEADER, exp),), timeout=30)
            except grpc.RpcError as exc:
                raise from_rpc_error(exc) from None

        for data in (not_utf8, good[:-3], b"\x0a\xff\x01"):
            err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", lambda d=data: export(d))
            assert "ExportTraceServiceRequest" in str(err)
        assert snapshot(database, "traces", "spans", "trace_tags") == before
        assert export(good) == b""  # the same request, whole: stored, and an empty answer
    assert count_rows(database, "spans") == 1
