"""The OTLP path fills Structs in place (``server/otlp.py``: ``_update``, ``_fill``,
``_extend``); whatever the JSON value, the result is the message ``Struct.update`` builds."""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2
from hypothesis import given, settings, strategies as st

from server.otlp import _fill, _update

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
