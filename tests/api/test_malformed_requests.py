"""Request bytes that are no request: INVALID_ARGUMENT ``MALFORMED_REQUEST``, nothing stored.

grpc's own parse answers them with INTERNAL "Exception deserializing request!" before the
interceptor sees the call; every method of ours parses its request inside the call instead
(``server/registration.py``), and LogSpans reads its bytes in C (``read_log_spans``).
"""

from __future__ import annotations

import logging
from typing import Any

import grpc
import pytest
from google.protobuf import descriptor_pool

from mlgenai.client import Client, from_rpc_error
from mlgenai.v1 import span_pb2, trace_service_pb2 as pb
from server.app import SERVICE_NAMES
from server.preserialized import varint
from store.uow import Database
from tests.api.trace_support import TRACE_TABLES, sid, tid
from tests.helpers import count_rows, expect_error, snapshot

NOT_A_MESSAGE = b"\x0a\xff\xff\xff"  # field 1, a length beyond the data: no message parses it


def methods() -> list[tuple[str, str, str]]:
    """(service, method, request type) of every method of our services (OTLP has its own tests)."""
    pool = descriptor_pool.Default()
    out = []
    for service in SERVICE_NAMES:
        if service.startswith("opentelemetry."):
            continue
        for m in pool.FindServiceByName(service).methods:
            out.append((service, m.name, m.input_type.full_name))
    return out


def call_raw(target: str, path: str, data: bytes, metadata: Any = None) -> bytes:
    with grpc.insecure_channel(target) as channel:
        try:
            return channel.unary_unary(path)(data, metadata=metadata, timeout=30)  # type: ignore[no-any-return]
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None


def test_every_method_answers_bytes_that_are_no_request_with_invalid_argument(
    target: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="mlgenai.rpc")
    all_methods = methods()
    assert len(all_methods) > 60  # every service's methods are here
    for service, method, request_type in all_methods:
        path = f"/{service}/{method}"
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_REQUEST", lambda p=path: call_raw(target, p, NOT_A_MESSAGE)
        )
        assert request_type in str(err), (path, str(err))
    codes = {(r.method, r.code) for r in caplog.records if r.name == "mlgenai.rpc"}  # type: ignore[attr-defined]
    assert codes == {(f"/{s}/{m}", "INVALID_ARGUMENT") for s, m, _ in all_methods}  # logged, none INTERNAL


def test_an_empty_request_is_still_a_request(target: str) -> None:
    """No bytes are the request with every field at its default: checked as such, not malformed."""
    err = expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "INVALID_FIELD",
        lambda: call_raw(target, "/mlgenai.v1.TraceService/LogSpans", b""),
        field="spans",
    )
    assert "1 to" in str(err)


def test_log_spans_bytes_cut_short_store_nothing_and_the_whole_request_stores(
    client: Client, database: Database, target: str
) -> None:
    exp = client.create_experiment("malformed")["experiment_id"]
    spans = [span_pb2.Span(trace_id=tid(1), span_id=sid(i), name=f"s{i}", start_time_unix_nano=1) for i in (1, 2)]
    whole = pb.LogSpansRequest(experiment_id=exp, spans=spans).SerializeToString()
    before = snapshot(database, *TRACE_TABLES)
    for data in (whole[:-3], whole.replace(b"s2", b"\xff\xfe")):
        err = expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "MALFORMED_REQUEST",
            lambda d=data: call_raw(target, "/mlgenai.v1.TraceService/LogSpans", d),
        )
        assert "mlgenai.v1.LogSpansRequest" in str(err)
    assert snapshot(database, *TRACE_TABLES) == before
    answer = pb.LogSpansResponse.FromString(call_raw(target, "/mlgenai.v1.TraceService/LogSpans", whole))
    assert answer.span_count == 2
    assert count_rows(database, "spans") == 2


def _len(field: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return bytes([field << 3 | 2, len(payload)]) + payload


def test_attributes_sent_twice_are_stored_merged_and_found_by_either_half(client: Client, target: str) -> None:
    """What the server filters on and what it returns are the same merged message a parser reads."""
    exp = client.create_experiment("merged")["experiment_id"]

    def attribute(k: bytes, v: bytes) -> bytes:  # Struct.fields entry with a string Value
        return _len(11, _len(1, _len(1, k) + _len(2, _len(3, v))))

    span = span_pb2.Span(trace_id=tid(1), span_id=sid(1), name="root", start_time_unix_nano=1, end_time_unix_nano=2)
    body = span.SerializeToString() + attribute(b"model", b"gpt-4") + attribute(b"team", b"search")
    data = _len(1, exp.encode()) + bytes([2 << 3 | 2]) + varint(len(body)) + body
    call_raw(target, "/mlgenai.v1.TraceService/LogSpans", data)
    stored = client.traces.GetTrace(pb.GetTraceRequest(trace_id=tid(1))).spans[0]
    assert {k: v.string_value for k, v in stored.attributes.fields.items()} == {"model": "gpt-4", "team": "search"}
    for text in ("span.attributes.model = 'gpt-4'", "span.attributes.team = 'search'"):
        found = client.traces.SearchTraces(pb.SearchTracesRequest(experiment_ids=[exp], filter=text))
        assert [t.trace_id for t in found.traces] == [tid(1)], text
