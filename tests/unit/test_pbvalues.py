"""The C reader of protobuf Structs and Values (server/_pbvalues.c) against the Python walk it
replaces (server/convert/values.py): the same values, the same errors, on generated messages
and on hand-made wire bytes a serializer would not write (repeated keys, unknown fields,
truncation)."""

from __future__ import annotations

import math
import struct
from typing import Any

import pytest
from google.protobuf import struct_pb2
from google.protobuf.message import DecodeError
from hypothesis import given, settings, strategies as st
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp_pb
from opentelemetry.proto.common.v1 import common_pb2
from opentelemetry.proto.resource.v1 import resource_pb2
from opentelemetry.proto.trace.v1 import trace_pb2 as otlp_trace_pb

from mlgenai.client.convert import from_struct, from_value
from mlgenai.v1 import span_pb2
from server import otlp
from server.convert import values
from server.convert.datasets import _varint
from server.convert.spans import read_back
from server.convert.values import Fields, HasNul, NotFinite, plain_struct, plain_value, struct_of, value_of
from server.validation import Violations
from store.errors import InvalidArgument

c: Any = values._pbvalues  # the tests of wire bytes call it directly

NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-(2**60), 2**60).map(float),
    st.sampled_from([0.0, -0.0, 2.0**53, -(2.0**53), 2.0**53 + 2, 1e300, 5e-324, 0.1]),
)
TEXT = st.text(alphabet=st.characters(codec="utf-8"), max_size=8)  # NUL, astral planes included
SCALARS = st.one_of(st.none(), st.booleans(), NUMBERS, TEXT)
JSON = st.recursive(
    SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)


def to_value(x: Any) -> struct_pb2.Value:
    """``x`` as a Value, NaN and infinities included (the client's ``to_value`` refuses them)."""
    v = struct_pb2.Value()
    otlp._fill(v, x)
    return v


def outcome(fn: Any, *args: Any, **kwargs: Any) -> tuple[str, Any]:
    """What ``fn`` gives: its value, or its error's class and message."""
    try:
        return "value", fn(*args, **kwargs)
    except ValueError as exc:
        return type(exc).__name__, str(exc)


def same(a: Any, b: Any) -> bool:
    """Equal, with the types too (1 is not 1.0 is not True), -0.0 is not 0.0 and NaN is NaN."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    return bool(a == b)


def agree(walk: tuple[str, Any], fast: tuple[str, Any]) -> None:
    """The same value, or both refused. Where a message has several problems, which one is
    reported depends on the order keys are read in: the walk goes by protobuf's map, the module
    by the wire (the sender's order), so only a lone problem is sure to get the same words."""
    assert (walk[0] == "value") == (fast[0] == "value"), (walk, fast)
    if walk[0] == "value":
        assert same(walk[1], fast[1])


def test_the_c_module_is_built():
    # A machine without a C compiler installs the package without the module (and the server
    # uses the walk); the tests below call the module, so they need it.
    assert values.native(), "server._pbvalues is not built: install gcc and the Python headers, then make install"


@settings(max_examples=400, deadline=None)
@given(JSON, st.booleans())
def test_values_read_the_same_as_the_walk(x: Any, reject_nul: bool):
    v = to_value(x)
    walk, fast = outcome(plain_value, v, reject_nul), outcome(value_of, v, reject_nul)
    agree(walk, fast)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, JSON, max_size=6), st.booleans())
def test_structs_read_the_same_as_the_walk(x: dict[str, Any], reject_nul: bool):
    s = to_value(x).struct_value
    walk, fast = outcome(plain_struct, s, reject_nul), outcome(struct_of, s, reject_nul)
    agree(walk, fast)


@pytest.mark.parametrize(
    ("number", "expected"),
    [
        (1.0, 1),
        (-0.0, 0),
        (2.0**53, 2**53),
        (-(2.0**53), -(2**53)),
        (2.0**53 + 2, 2.0**53 + 2),  # beyond exact integers: stays a float
        (0.1, 0.1),
        (5e-324, 5e-324),
        (1e300, 1e300),
    ],
)
def test_numbers_are_ints_when_integral_and_exact(number: float, expected: Any):
    got = value_of(struct_pb2.Value(number_value=number))
    assert same(got, expected)


@pytest.mark.parametrize("number", [math.nan, math.inf, -math.inf])
def test_numbers_without_a_json_form_are_refused(number: float):
    with pytest.raises(NotFinite, match="numbers must be finite"):
        value_of(struct_pb2.Value(list_value=struct_pb2.ListValue(values=[struct_pb2.Value(number_value=number)])))


def test_nul_is_refused_in_keys_and_in_strings_only_when_asked():
    in_key = to_value({"a\x00b": "x"}).struct_value
    in_text = to_value({"a": ["x\x00"]}).struct_value
    assert struct_of(in_key) == {"a\x00b": "x"}
    assert struct_of(in_text) == {"a": ["x\x00"]}
    with pytest.raises(HasNul, match=r"^keys must not contain the NUL character$"):
        struct_of(in_key, reject_nul=True)
    with pytest.raises(HasNul, match=r"^must not contain the NUL character$"):
        struct_of(in_text, reject_nul=True)
    with pytest.raises(HasNul, match=r"^must not contain the NUL character$"):  # the value's, as the walk
        struct_of(to_value({"k\x00": "v\x00"}).struct_value, reject_nul=True)


def test_deep_nesting_reads_like_the_walk():
    x: Any = "leaf"
    for i in range(30):
        x = {f"k{i}": [x]}
    s = to_value(x).struct_value
    assert same(struct_of(s), plain_struct(s))


# -- wire bytes a serializer does not write --------------------------------------------------


def key(field: int, wire_type: int) -> bytes:
    return bytes([field << 3 | wire_type])


def length(field: int, payload: bytes) -> bytes:
    assert len(payload) < 128
    return key(field, 2) + bytes([len(payload)]) + payload


def entry(k: str, v: bytes | None) -> bytes:
    body = length(1, k.encode()) + (length(2, v) if v is not None else b"")
    return length(1, body)  # Struct.fields


NUMBER_1 = key(2, 1) + struct.pack("<d", 1.0)
TEXT_A = length(3, b"a")


def test_a_repeated_key_keeps_the_last_value_and_a_missing_value_is_null():
    data = entry("k", TEXT_A) + entry("k", NUMBER_1) + entry("none", None) + entry("empty", b"")
    assert c.struct(data) == {"k": 1, "none": None, "empty": None}
    assert plain_struct(struct_pb2.Struct.FromString(data)) == {"k": 1, "none": None, "empty": None}


def test_the_last_kind_of_a_value_wins_and_unknown_fields_are_skipped():
    unknown = key(9, 0) + b"\x96\x01" + key(10, 1) + b"\0" * 8 + length(11, b"zz") + key(12, 5) + b"\0" * 4
    data = TEXT_A + unknown + NUMBER_1
    assert same(c.value(data), 1)
    assert same(plain_value(struct_pb2.Value.FromString(data)), 1)
    assert c.struct(unknown + entry("a", TEXT_A)) == {"a": "a"}
    assert c.value(b"") is None and c.struct(b"") == {}


@pytest.mark.parametrize(
    "data",
    [
        b"\x0a",  # a length missing
        b"\x0a\x05ab",  # a length beyond the end
        key(2, 1) + b"\0\0\0",  # a double cut short
        b"\x08\x80\x80",  # a varint cut short
        b"\x08" + b"\xff" * 10 + b"\x01",  # a varint longer than 64 bits
        key(7, 3),  # a group
        length(3, b"\xff\xfe"),  # a string that is not UTF-8
    ],
)
def test_malformed_bytes_are_a_value_error(data: bytes):
    with pytest.raises(ValueError):
        c.value(data)


def test_nesting_beyond_the_limit_is_refused_not_a_crash():
    deep = b""  # a Value
    for _ in range(250):  # lists of lists, beyond any parser's limit
        items = key(1, 2) + _varint(len(deep)) + deep  # ListValue.values
        deep = key(6, 2) + _varint(len(items)) + items  # Value.list_value
    with pytest.raises(ValueError, match="nested too deeply"):
        c.value(deep)


# -- a message's fields at once --------------------------------------------------------------

SPAN_VALUES = Fields(span_pb2.Span.DESCRIPTOR, "inputs", "outputs", "attributes")


@pytest.mark.parametrize("native", [True, False])
def test_fields_of_a_span_with_and_without_the_c_module(monkeypatch: pytest.MonkeyPatch, native: bool):
    if not native:
        monkeypatch.setattr(values, "_pbvalues", None)
    full = span_pb2.Span(name="s", inputs=to_value({"q": "hi"}), attributes=to_value({"n": 2.0}).struct_value)
    assert SPAN_VALUES.of(full, full.SerializeToString()) == ({"q": "hi"}, None, {"n": 2})
    empty = span_pb2.Span(name="s")
    assert SPAN_VALUES.of(empty, empty.SerializeToString()) == (None, None, {})
    bad = span_pb2.Span(outputs=struct_pb2.Value(number_value=math.nan))
    with pytest.raises(NotFinite):
        SPAN_VALUES.of(bad, bad.SerializeToString())


# -- OTLP: KeyValue lists in, Struct and Value bytes out -------------------------------------

INT64 = st.one_of(st.integers(-(2**63), 2**63 - 1), st.sampled_from([2**53, 2**53 + 1, -(2**53) - 1, -(2**63)]))
ANY_SCALARS = st.one_of(
    st.builds(common_pb2.AnyValue),
    st.builds(lambda x: common_pb2.AnyValue(string_value=x), TEXT),
    st.builds(lambda x: common_pb2.AnyValue(bool_value=x), st.booleans()),
    st.builds(lambda x: common_pb2.AnyValue(int_value=x), INT64),
    st.builds(lambda x: common_pb2.AnyValue(double_value=x), st.floats()),
    st.builds(lambda x: common_pb2.AnyValue(bytes_value=x), st.binary(max_size=6)),
)


def _array(items: list[common_pb2.AnyValue]) -> common_pb2.AnyValue:
    return common_pb2.AnyValue(array_value=common_pb2.ArrayValue(values=items))


def _kvlist(pairs: list[tuple[str, common_pb2.AnyValue]]) -> common_pb2.AnyValue:
    kvs = [common_pb2.KeyValue(key=k, value=v) for k, v in pairs]
    return common_pb2.AnyValue(kvlist_value=common_pb2.KeyValueList(values=kvs))


ANY = st.recursive(
    ANY_SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3).map(_array), st.lists(st.tuples(TEXT, inner), max_size=3).map(_kvlist)
    ),
    max_leaves=12,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c", "mlflow.spanInputs"]), ANY), max_size=6))
def test_otlp_attributes_read_the_same_as_the_walk(pairs: list[tuple[str, common_pb2.AnyValue]]):
    span = otlp_trace_pb.Span(name="s", attributes=[common_pb2.KeyValue(key=k, value=v) for k, v in pairs])
    number = otlp_trace_pb.Span.DESCRIPTOR.fields_by_name["attributes"].number
    assert same(c.key_values(span.SerializeToString(), number), otlp.attributes(span.attributes))


PLAIN = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=False), TEXT),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(TEXT, inner, max_size=4)),
    max_leaves=20,
)


@settings(max_examples=400, deadline=None)
@given(st.dictionaries(TEXT, PLAIN, max_size=5), PLAIN)
def test_struct_and_value_bytes_fill_messages_as_the_walk_does(mapping: dict[str, Any], value: Any):
    walked, merged = struct_pb2.Struct(), struct_pb2.Struct()
    otlp._update(walked, mapping)
    merged.MergeFromString(c.encode_struct(mapping))
    assert merged == walked
    walked_value, merged_value = struct_pb2.Value(), struct_pb2.Value()
    otlp._fill(walked_value, value)
    merged_value.MergeFromString(c.encode_value(value))
    assert merged_value == walked_value


@pytest.mark.parametrize(
    ("value", "error"),
    [
        (object(), TypeError),
        ({1: "x"}, TypeError),
        ((1, 2), TypeError),
        (10**400, OverflowError),
        ("\ud800", ValueError),
    ],
)
def test_values_that_fit_no_message_are_refused(value: Any, error: type[Exception]):
    with pytest.raises(error):
        c.encode_value({"k": [value]})
    with pytest.raises(error):
        otlp._fill(struct_pb2.Value(), {"k": [value]})


INT64 = st.one_of(st.sampled_from([0, 1, -1, 2**63 - 1, -(2**63)]), st.integers(-(2**63), 2**63 - 1))
EVENTS = st.lists(st.tuples(TEXT, INT64, st.dictionaries(TEXT, PLAIN, max_size=3)), max_size=3)
MAYBE = st.one_of(st.just(()), PLAIN.map(lambda v: (v,)))


@settings(max_examples=400, deadline=None)
@given(
    st.tuples(TEXT, TEXT, TEXT, TEXT, TEXT),
    INT64,
    INT64,
    st.integers(-(2**31), 2**31 - 1),
    TEXT,
    MAYBE,
    MAYBE,
    st.dictionaries(TEXT, PLAIN, max_size=4),
    EVENTS,
)
def test_a_span_written_in_c_is_the_span_upb_writes(
    texts: tuple[str, ...], start: int, end: int, code: int, message: str, inputs: Any, outputs: Any,
    attributes: dict[str, Any], events: list[Any],
):  # fmt: skip
    args = (*texts, start, end, code, message, inputs, outputs, attributes, events)
    walk, fast = outcome(otlp._span_bytes, *args), outcome(c.encode_span, *args)
    assert walk[0] == fast[0], (walk, fast)
    if walk[0] == "value":  # the same message; the bytes differ only in the order of a Struct's keys
        assert span_pb2.Span.FromString(fast[1]) == span_pb2.Span.FromString(walk[1])
        assert len(fast[1]) == len(walk[1])


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({5: 2**63}, ValueError),  # start_time_unix_nano beyond int64
        ({6: -(2**63) - 1}, ValueError),
        ({7: 2**31}, ValueError),  # a status code beyond int32
        ({4: "\ud800"}, UnicodeEncodeError),
        ({9: (10**400,)}, OverflowError),
        ({11: {"k": object()}}, TypeError),
        ({12: [("e", 2**64, {})]}, ValueError),
    ],
)
def test_a_span_that_upb_refuses_is_refused_in_c_with_the_same_error(change: dict[int, Any], error: type[Exception]):
    args: list[Any] = ["tr-1", "s", "", "n", "LLM", 1, 2, 1, "", (), (), {}, []]
    for at, value in change.items():
        args[at] = value
    with pytest.raises(error):
        otlp._span_bytes(*args)
    with pytest.raises(error):
        c.encode_span(*args)


@settings(max_examples=400, deadline=None)
@given(PLAIN)
def test_values_read_back_in_c_as_in_python(value: Any):
    assert same(c.read_back(value), read_back(value))
    assert c.read_back({"k": value, "l": [value]}) == read_back({"k": value, "l": [value]})


def test_read_back_refuses_an_integer_beyond_doubles_as_python_does():
    with pytest.raises(OverflowError):
        c.read_back({"k": [10**400]})
    with pytest.raises(OverflowError):
        read_back({"k": [10**400]})


def without_c(monkeypatch: pytest.MonkeyPatch) -> None:
    """``server.otlp`` as it runs where the C module was not built."""
    monkeypatch.setattr(otlp, "_C", None)
    monkeypatch.setattr(otlp, "_encode_span", otlp._span_bytes)
    monkeypatch.setattr(otlp, "_read_back", read_back)


@pytest.mark.parametrize("native", [True, False])
def test_otlp_spans_convert_the_same_with_and_without_the_c_module(monkeypatch: pytest.MonkeyPatch, native: bool):
    if not native:
        without_c(monkeypatch)
    span = otlp_trace_pb.Span(
        trace_id=b"\x01" * 16,
        span_id=b"\x02" * 8,
        name="llm",
        start_time_unix_nano=1,
        end_time_unix_nano=2,
        attributes=[
            common_pb2.KeyValue(key="mlflow.spanInputs", value=common_pb2.AnyValue(string_value='{"q": [1, 2.5]}')),
            common_pb2.KeyValue(key="n", value=common_pb2.AnyValue(int_value=2**60)),
            common_pb2.KeyValue(key="d", value=common_pb2.AnyValue(double_value=math.inf)),
            common_pb2.KeyValue(key="b", value=common_pb2.AnyValue(bytes_value=b"\xff")),
        ],
        events=[otlp_trace_pb.Span.Event(name="e", time_unix_nano=2, attributes=[common_pb2.KeyValue(key="k")])],
    )
    request = otlp_pb.ExportTraceServiceRequest(
        resource_spans=[otlp_trace_pb.ResourceSpans(scope_spans=[otlp_trace_pb.ScopeSpans(spans=[span])])]
    )
    [(_, [plain])] = otlp.plain_spans(request.SerializeToString())
    converted = otlp.convert(plain, Violations(), "span")
    assert converted is not None
    assert converted.attributes == {"n": str(2**60), "d": "Infinity", "b": "/w=="}
    stored = span_pb2.Span.FromString(converted.record.proto)
    assert from_value(stored.inputs) == {"q": [1, 2.5]}
    assert from_struct(stored.attributes) == {"n": str(2**60), "d": "Infinity", "b": "/w=="}
    assert [(e.name, from_struct(e.attributes)) for e in stored.events] == [("e", {"k": None})]


# -- a whole OTLP request ----------------------------------------------------------------------

ID = st.one_of(st.binary(max_size=17), st.sampled_from([b"", b"\x00" * 8, b"\x01" * 16]))
FIXED64 = st.one_of(st.sampled_from([0, 1, 2**63, 2**64 - 1]), st.integers(0, 2**64 - 1))
KVS = st.lists(st.tuples(st.sampled_from(["a", "b", "mlflow.spanInputs", ""]), ANY), max_size=4).map(
    lambda pairs: [common_pb2.KeyValue(key=k, value=v) for k, v in pairs]
)
EVENT = st.builds(otlp_trace_pb.Span.Event, name=TEXT, time_unix_nano=FIXED64, attributes=KVS)
SPAN = st.builds(
    otlp_trace_pb.Span,
    trace_id=ID,
    span_id=ID,
    parent_span_id=ID,
    trace_state=TEXT,
    name=TEXT,
    kind=st.integers(0, 5),
    start_time_unix_nano=FIXED64,
    end_time_unix_nano=FIXED64,
    attributes=KVS,
    events=st.lists(EVENT, max_size=2),
    links=st.lists(st.builds(otlp_trace_pb.Span.Link, trace_id=ID, attributes=KVS), max_size=1),
    status=st.builds(otlp_trace_pb.Status, message=TEXT, code=st.integers(0, 2)),
    flags=st.integers(0, 2**32 - 1),
)
REQUEST = st.builds(
    otlp_pb.ExportTraceServiceRequest,
    resource_spans=st.lists(
        st.builds(
            otlp_trace_pb.ResourceSpans,
            resource=st.builds(resource_pb2.Resource, attributes=KVS),
            scope_spans=st.lists(
                st.builds(
                    otlp_trace_pb.ScopeSpans,
                    scope=st.builds(common_pb2.InstrumentationScope, name=TEXT),
                    spans=st.lists(SPAN, max_size=3),
                ),
                max_size=2,
            ),
        ),
        max_size=2,
    ),
)


def same_request(fast: list[Any], walked: list[Any]) -> bool:
    return len(fast) == len(walked) and all(
        same(fa, wa) and len(fs) == len(ws) and all(same(list(f), list(w)) for f, w in zip(fs, ws, strict=True))
        for (fa, fs), (wa, ws) in zip(fast, walked, strict=True)
    )


@settings(max_examples=300, deadline=None)
@given(REQUEST)
def test_an_otlp_request_reads_in_c_as_its_parsed_message_does(request: otlp_pb.ExportTraceServiceRequest):
    fast = c.otlp_spans(request.SerializeToString())
    walked = otlp._walk(request)
    assert same_request(
        [(a, [list(s) for s in sp]) for a, sp in fast], [(a, [list(s) for s in sp]) for a, sp in walked]
    )


def length_field(number: int, payload: bytes) -> bytes:
    return key(number, 2) + _varint(len(payload)) + payload


def test_otlp_fields_sent_twice_are_read_as_a_parser_reads_them():
    """The last scalar wins, messages (resource, status) merge, a known number with another wire
    type is an unknown field; the same bytes through upb give the same."""

    def keyvalue(k: bytes, v: bytes) -> bytes:  # a KeyValue with a string AnyValue
        return length_field(1, k) + length_field(2, length_field(1, v))

    span = (
        length_field(1, b"\x01" * 16) + length_field(2, b"\x02" * 8) + length_field(5, b"one") + length_field(5, b"two")
        + key(5, 0) + b"\x07"  # name as a varint: an unknown field
        + length_field(15, length_field(2, b"first") + key(3, 0) + b"\x02")  # status: message, code ERROR
        + length_field(15, length_field(2, b"second"))  # merged: the message replaced, the code kept
        + length_field(9, keyvalue(b"k", b"x")) + length_field(9, keyvalue(b"k", b"y"))
    )  # fmt: skip
    resource_1 = length_field(1, length_field(1, keyvalue(b"service.name", b"a")))
    resource_2 = length_field(1, length_field(1, keyvalue(b"env", b"prod")))
    data = length_field(1, resource_1 + resource_2 + length_field(2, length_field(2, span)))
    [(attrs, [plain])] = c.otlp_spans(data)
    assert attrs == {"service.name": "a", "env": "prod"}
    assert (plain[5], plain[8], plain[9], plain[10]) == ("two", 2, "second", {"k": "y"})
    walked = otlp._walk(otlp_pb.ExportTraceServiceRequest.FromString(data))
    assert same_request([(attrs, [list(plain)])], [(a, [list(s) for s in sp]) for a, sp in walked])


@pytest.mark.parametrize(
    "data",
    [
        length_field(1, length_field(2, length_field(2, length_field(5, b"\xff\xfe")))),  # a name not UTF-8
        length_field(1, length_field(2, length_field(2, length_field(1, b"\x01" * 16))))[:-3],  # cut short
        b"\x0a\xff",  # a length beyond the data
        key(1, 3),  # a group
    ],
)
@pytest.mark.parametrize("native", [True, False])
def test_bytes_that_are_no_otlp_request_are_invalid_argument(
    monkeypatch: pytest.MonkeyPatch, data: bytes, native: bool
):
    if not native:
        without_c(monkeypatch)
    with pytest.raises(InvalidArgument) as caught:
        otlp.plain_spans(data)
    assert caught.value.reason == "MALFORMED_REQUEST"


@pytest.mark.parametrize("where", ["attributes", "event"])
def test_an_otlp_span_nested_too_deep_to_be_read_back_is_refused(where: str):
    """upb refuses messages nested more than 100 levels. An exported span's values sit as deep in
    the stored span, inside BatchGetTraces' response, as in the export request: the module
    refuses what upb refuses, so every span it stores parses back (the request is malformed)."""
    from mlgenai.v1 import trace_service_pb2 as pb

    stored_any = 0
    for levels in range(20, 45):
        value = key(3, 0) + b"\x01"  # AnyValue int_value 1, then kvlist_value > values > KeyValue
        for _ in range(levels):
            value = length_field(6, length_field(1, length_field(1, b"k") + length_field(2, value)))
        attribute = length_field(1, b"a") + length_field(2, value)  # a KeyValue
        span = length_field(1, b"\x01" * 16) + length_field(2, b"\x02" * 8) + length_field(5, b"n")
        span += key(7, 1) + struct.pack("<Q", 1)
        if where == "attributes":
            span += length_field(9, attribute)
        else:
            span += length_field(11, length_field(2, b"e") + length_field(3, attribute))
        data = length_field(1, length_field(2, length_field(2, span)))  # ResourceSpans > ScopeSpans > Span
        try:
            otlp_pb.ExportTraceServiceRequest.FromString(data)
            parsed = True
        except DecodeError:
            parsed = False
        try:
            [(_, [plain])] = otlp.plain_spans(data)
        except InvalidArgument as exc:
            assert exc.reason == "MALFORMED_REQUEST" and not parsed, levels
            continue
        assert parsed, levels
        converted = otlp.convert(plain, Violations(), "span")
        assert converted is not None
        batch = length_field(1, length_field(2, converted.record.proto))  # BatchGetTracesResponse > Trace > Span
        pb.BatchGetTracesResponse.FromString(batch)
        stored_any = levels
    assert stored_any >= 30  # the limit is upb's, no lower
