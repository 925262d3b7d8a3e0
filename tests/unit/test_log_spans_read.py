"""LogSpans reads its request's bytes in C (``server.convert.spans.read_log_spans``).

Each span, read by ``_pbvalues.log_spans`` and made a record by ``plain_record``, must give the
record, or the problems, that the parsed message gives through ``to_record`` (the path without
the C module); the span stored is the message the client sent. Bytes a parser reads otherwise
than field by field (a message field sent twice is merged) take the parsed path.
"""

from __future__ import annotations

import math
import struct
from typing import Any

import orjson
import pytest
from google.protobuf.message import DecodeError
from hypothesis import given, settings, strategies as st

from mlgenai.v1 import span_pb2, trace_service_pb2 as pb
from server.convert import spans
from server.convert.datasets import _varint
from server.convert.spans import plain_record, read_log_spans, to_record
from server.validation import Violations
from store.errors import InvalidArgument
from tests.unit.test_pbvalues import JSON, TEXT, to_value


def records(data: bytes) -> tuple[str, list[Any], list[tuple[str, str]]]:
    """The experiment id, the records and the problems LogSpans makes of ``data``."""
    experiment_id, sent = read_log_spans(data)
    checks = Violations()
    out = [
        plain_record(s, checks, f"spans[{i}]") if type(s) is tuple else to_record(s, checks, f"spans[{i}]")
        for i, s in enumerate(sent)
    ]
    return experiment_id, out, [(v.field, v.description) for v in checks.items]


def parsed_way(monkeypatch: pytest.MonkeyPatch, data: bytes) -> tuple[str, list[Any], list[tuple[str, str]]]:
    """``records`` as a server without the C module makes them."""
    with monkeypatch.context() as m:
        m.setattr(spans, "_C", None)
        return records(data)


def sorted_json(text: str) -> bytes:
    return orjson.dumps(orjson.loads(text), option=orjson.OPT_SORT_KEYS)


def same_records(fast: list[Any], parsed: list[Any]) -> None:
    """The same records; the stored span is the same message (the bytes may differ in order)."""
    assert len(fast) == len(parsed)
    for f, p in zip(fast, parsed, strict=True):
        assert (f is None) == (p is None)
        if f is None:
            continue
        assert f.__class__ is p.__class__
        for name in f.__slots__:
            if name not in ("proto", "payload_json"):
                assert getattr(f, name) == getattr(p, name), name
        # The same JSON; keys come in the order each path read them (the sender's, or upb's).
        assert sorted_json(f.payload_json) == sorted_json(p.payload_json)
        assert span_pb2.Span.FromString(f.proto) == span_pb2.Span.FromString(p.proto)


ID = st.one_of(st.sampled_from(["tr-" + "a" * 32, "tr-" + "0123456789abcdef" * 2, "", "tr-x"]), TEXT)
SPAN_ID = st.one_of(st.sampled_from(["0123456789abcdef", "fedcba9876543210", ""]), TEXT)
INT64 = st.one_of(
    st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63), 1_760_000_000_000_000_000]), st.integers(-(2**63), 2**63 - 1)
)
VALUE = st.one_of(st.none(), JSON.map(to_value))
STRUCT = st.dictionaries(TEXT, JSON, max_size=4).map(lambda d: to_value(d).struct_value)
SPAN = st.builds(
    span_pb2.Span,
    trace_id=ID,
    span_id=SPAN_ID,
    parent_span_id=st.one_of(st.just(""), SPAN_ID),
    name=st.one_of(st.just("llm"), TEXT),
    span_type=st.one_of(st.just(""), st.just("LLM"), TEXT),
    start_time_unix_nano=INT64,
    end_time_unix_nano=INT64,
    status=st.builds(span_pb2.SpanStatus, code=st.integers(-1, 3), message=TEXT),
    inputs=VALUE,
    outputs=VALUE,
    attributes=STRUCT,
    events=st.lists(st.builds(span_pb2.SpanEvent, name=TEXT, time_unix_nano=INT64, attributes=STRUCT), max_size=2),
)


@settings(max_examples=400, deadline=None)
@given(st.text(max_size=5), st.lists(SPAN, min_size=1, max_size=3))
def test_a_request_read_in_c_gives_the_records_and_problems_of_its_parsed_message(
    experiment_id: str, sent: list[span_pb2.Span]
):
    data = pb.LogSpansRequest(experiment_id=experiment_id, spans=sent).SerializeToString()
    with pytest.MonkeyPatch.context() as m:
        fast = records(data)
        parsed = parsed_way(m, data)
    assert fast[0] == parsed[0] == experiment_id
    assert fast[2] == parsed[2]
    same_records(fast[1], parsed[1])


# -- bytes a serializer does not write -----------------------------------------------------------


def key(field: int, wire_type: int) -> bytes:
    return _varint(field << 3 | wire_type)


def length(field: int, payload: bytes) -> bytes:
    return key(field, 2) + _varint(len(payload)) + payload


def entry(k: bytes, value: bytes) -> bytes:  # a Struct's map entry
    return length(1, length(1, k) + length(2, value))


TEXT_X, TEXT_Y = length(3, b"x"), length(3, b"y")
BASE = (
    length(1, b"tr-" + b"a" * 32) + length(2, b"0123456789abcdef") + length(4, b"root")
    + key(6, 0) + _varint(5) + key(7, 0) + _varint(9)
)  # fmt: skip


def request(*span_bodies: bytes) -> bytes:
    return length(1, b"7") + b"".join(length(2, body) for body in span_bodies)


def pair(k: bytes, *values: bytes) -> bytes:  # a map entry whose value may come more than once
    return length(1, k) + b"".join(length(2, v) for v in values)


@pytest.mark.parametrize(
    ("extra", "attributes", "inputs"),
    [
        # attributes sent twice: the two Structs merge
        (length(11, entry(b"a", TEXT_X)) + length(11, entry(b"b", TEXT_Y)), {"a": "x", "b": "y"}, None),
        # a Struct entry whose Value comes twice: the Values merge (two struct_values here)
        (
            length(11, length(1, pair(b"a", length(5, entry(b"p", TEXT_X)), length(5, entry(b"q", TEXT_Y))))),
            {"a": {"p": "x", "q": "y"}},
            None,
        ),
        # inputs sent twice, each a struct_value
        (
            length(9, length(5, entry(b"p", TEXT_X))) + length(9, length(5, entry(b"q", TEXT_Y))),
            {},
            {"p": "x", "q": "y"},
        ),
        # one Value with its list_value twice: the lists join
        (length(9, length(6, length(1, TEXT_X)) + length(6, length(1, TEXT_Y))), {}, ["x", "y"]),
    ],
    ids=["attributes-twice", "entry-value-twice", "inputs-twice", "list-value-twice"],
)
def test_a_message_field_sent_twice_is_merged_as_a_parser_merges_it(
    monkeypatch: pytest.MonkeyPatch, extra: bytes, attributes: dict[str, Any], inputs: Any
):
    data = request(BASE + extra)
    _, sent = read_log_spans(data)
    assert isinstance(sent[0], span_pb2.Span)  # parsed, not read field by field
    _, [record], problems = records(data)
    assert problems == []
    stored = span_pb2.Span.FromString(record.proto)
    assert stored == span_pb2.Span.FromString(BASE + extra)
    assert orjson.loads(record.payload_json)["attributes"] == attributes
    assert orjson.loads(record.payload_json)["inputs"] == inputs
    same_records([record], parsed_way(monkeypatch, data)[1])


def test_scalars_sent_twice_keep_the_last_and_unknown_fields_are_kept_in_the_stored_span(
    monkeypatch: pytest.MonkeyPatch,
):
    unknown = key(20, 0) + _varint(3) + length(21, b"zz")
    status = length(8, key(1, 0) + _varint(2) + length(2, b"first")) + length(8, length(2, b"second"))
    body = BASE + length(4, b"again") + unknown + status + length(11, entry(b"k", TEXT_X) + entry(b"k", TEXT_Y))
    data = request(body)
    _, [plain] = read_log_spans(data)
    assert type(plain) is tuple  # read in C
    assert plain[3] == "again" and (plain[7], plain[8]) == (2, "second") and plain[11] == {"k": "y"}
    _, [record], problems = records(data)
    assert problems == [] and record.proto == body  # the span as it came
    assert length(21, b"zz") in span_pb2.Span.FromString(record.proto).SerializeToString()  # a parser keeps them
    same_records([record], parsed_way(monkeypatch, data)[1])


def test_a_number_that_is_not_finite_gets_the_parsed_path_and_its_problem(monkeypatch: pytest.MonkeyPatch):
    nan = key(2, 1) + struct.pack("<d", math.nan)
    data = request(BASE + length(10, nan), BASE + length(12, length(1, b"ev") + length(3, entry(b"e", nan))))
    _, sent = read_log_spans(data)
    assert [type(s) for s in sent] == [span_pb2.Span, span_pb2.Span]
    fast = records(data)
    assert fast[1] == [None, None]
    assert [f for f, _ in fast[2]] == ["spans[0]", "spans[1]"]
    assert fast[2] == parsed_way(monkeypatch, data)[2]


@pytest.mark.parametrize(
    "data",
    [
        request(BASE)[:-2],  # cut short
        request(length(4, b"\xff\xfe")),  # a name that is not UTF-8
        request(BASE + length(11, entry(b"k\xff", TEXT_X))),  # a key that is not UTF-8
        request(BASE + length(9, length(3, b"\xc3"))),  # a string value that is not UTF-8
        length(1, b"\xff"),  # an experiment id that is not UTF-8
        key(2, 3),  # a group
        b"\x12\xff\xff\xff",  # a length beyond the data
    ],
    ids=["cut", "name", "key", "value", "experiment", "group", "length"],
)
@pytest.mark.parametrize("native", [True, False])
def test_bytes_that_are_no_log_spans_request_are_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, data: bytes, native: bool
):
    if not native:
        monkeypatch.setattr(spans, "_C", None)
    with pytest.raises(InvalidArgument) as caught:
        read_log_spans(data)
    assert caught.value.reason == "MALFORMED_REQUEST"
    assert "mlgenai.v1.LogSpansRequest" in str(caught.value)


# -- nesting: what is stored must parse back ------------------------------------------------------


def nested_value(kinds: str) -> bytes:
    """A Value nesting a Struct ('s', one key) or a ListValue ('l', one item) per letter, outermost
    first, around a number."""
    value = key(2, 1) + struct.pack("<d", 1.0)
    for kind in reversed(kinds):
        value = length(5, entry(b"k", value)) if kind == "s" else length(6, length(1, value))
    return value


def placed(where: str, value: bytes) -> bytes:
    if where == "inputs":
        return length(9, value)
    if where == "attributes":
        return length(11, entry(b"a", value))
    return length(12, length(1, b"ev") + length(3, entry(b"a", value)))  # an event's attributes


def readable_in_every_response(span: bytes) -> bool:
    """Whether upb parses ``span`` in the deepest response holding spans (BatchGetTraces)."""
    try:
        pb.BatchGetTracesResponse.FromString(length(1, length(2, span)))
    except DecodeError:
        return False
    return True


@pytest.mark.parametrize("where", ["inputs", "attributes", "event"])
@pytest.mark.parametrize("pattern", ["l", "s", "ls", "sll"])
def test_a_span_nested_too_deep_to_be_read_back_is_refused(where: str, pattern: str):
    """upb refuses messages nested more than 100 levels. What LogSpans stores must parse back
    in every response, BatchGetTraces' the deepest, one level below a LogSpansRequest's spans:
    so LogSpans refuses what upb refuses and what would sit one level too deep there."""
    upb_max = c_max = 0
    for levels in range(10, 110):
        kinds = (pattern * levels)[:levels]
        body = BASE + placed(where, nested_value(kinds))
        data = request(body)
        try:
            pb.LogSpansRequest.FromString(data)
            upb_max = levels
        except DecodeError:
            pass
        try:
            read_log_spans(data)
        except InvalidArgument as exc:
            assert exc.reason == "MALFORMED_REQUEST"
            continue
        c_max = levels
        assert upb_max == levels, "read what upb refuses"
        assert readable_in_every_response(body), kinds
    assert upb_max - 1 <= c_max <= upb_max
