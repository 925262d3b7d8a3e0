"""The OTLP path fills Structs in place (``server/otlp.py``: ``_update``, ``_fill``,
``_extend``); whatever the JSON value, the result is the message ``Struct.update`` builds. Its
JSON attributes are parsed by orjson where that gives what the standard library's decoder
(``_DECODER``) gives, and by that decoder everywhere else."""

from __future__ import annotations

import json
from typing import Any

import pytest
from google.protobuf import struct_pb2
from hypothesis import example, given, settings, strategies as st

from server.otlp import _DECODER, _fill, _update, decode_json

_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**53), max_value=2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12)
)
_JSON = st.recursive(
    _SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=8), inner, max_size=5),
    max_leaves=25,
)


def _by_update(values: dict[str, Any]) -> struct_pb2.Struct:
    expected = struct_pb2.Struct()
    expected.update(values)
    return expected


@settings(max_examples=300)
@given(st.dictionaries(st.text(max_size=8), _JSON, max_size=6))
def test_update_builds_what_struct_update_builds(values: dict[str, Any]) -> None:
    got = struct_pb2.Struct()
    _update(got, values)
    assert got == _by_update(values)
    assert got.SerializeToString(deterministic=True) == _by_update(values).SerializeToString(deterministic=True)


@settings(max_examples=300)
@given(_JSON)
def test_fill_sets_the_value_struct_update_sets(value: Any) -> None:
    got = struct_pb2.Value()
    _fill(got, value)
    assert got == _by_update({"k": value}).fields["k"]


def test_empty_containers_keep_their_kind() -> None:
    got = struct_pb2.Struct()
    _update(got, {"list": [], "object": {}, "nested": [[], {}]})
    assert got.fields["list"].WhichOneof("kind") == "list_value"
    assert got.fields["object"].WhichOneof("kind") == "struct_value"
    assert [v.WhichOneof("kind") for v in got.fields["nested"].list_value.values] == ["list_value", "struct_value"]
    assert got == _by_update({"list": [], "object": {}, "nested": [[], {}]})


def _reference(text: str) -> Any:
    """``decode_json`` by the standard library's decoder alone."""
    if text.lstrip()[:1] not in set('{["-0123456789tfn'):
        return text
    try:
        return _DECODER.decode(text)
    except (ValueError, RecursionError):
        return text


def _strictly_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


_WIDE_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()  # beyond 64 bits too: orjson reads those as floats
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
)
_WIDE = st.recursive(
    _WIDE_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=1000)
@given(_WIDE, st.booleans())
@example(-(2**63) - 1, False)
@example(2**64, False)
@example([1732460000123456789, -9223372036854775808], False)
def test_json_attributes_parse_as_the_standard_library_parses_them(value: Any, ascii_only: bool) -> None:
    text = json.dumps(value, ensure_ascii=ascii_only)
    assert _strictly_equal(decode_json(text), _reference(text))


@pytest.mark.parametrize(
    "text",
    [
        "-9999999999999999999", "18446744073709551616", '{"n": 123456789012345678901234567890}',  # floats to orjson
        '"\\ud800x"', '["\\udfff"]',  # lone surrogates: the standard library accepts them
        "NaN", "[Infinity]", "1e999", '{"a": -1e400}',  # no JSON form: kept as text
        "2024-08-07", "1 2", "{", "true!", "nul",  # not JSON: kept as text
        '{"a": 1, "a": 2}', "-0", "1E2", " [1] ", '"a\\u0000b"',
        "[" * 1200 + "]" * 1200,  # deeper than either parser goes
    ],
)  # fmt: skip
def test_json_attributes_where_orjson_differs_parse_as_the_standard_library_parses_them(text: str) -> None:
    assert _strictly_equal(decode_json(text), _reference(text))
