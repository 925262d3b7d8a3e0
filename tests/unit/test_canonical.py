"""Canonical JSON and record identity (store/canonical.py), as property tests.

* equivalent inputs collide: any key order, integral numbers as floats, -0.0, integers
  beyond 2**53 and their doubles, and the trip through protobuf (what the server receives);
* different inputs do not: the canonical text parses back to exactly the normalized value
  (types included: 1 is not true, "1" is not 1), so two values share a text only if they
  are the same JSON value — and SHA-256 does the rest.
"""

from __future__ import annotations

import json
import math
import random
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from mlgenai.client.convert import to_struct
from mlgenai.v1 import evaluation_dataset_pb2 as dpb
from server.convert.dataset_records import to_input
from server.validation import Violations
from store.canonical import NotJson, canonical_json, dumps, identity, normalize, reference_dumps

KEYS = st.text(max_size=6)
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**60), 2**60),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(max_size=8),
)
JSON = st.recursive(
    SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=4), max_leaves=12
)
OBJECTS = st.dictionaries(KEYS, JSON, min_size=1, max_size=5)


def shuffled(value: Any, rng: random.Random) -> Any:
    """The same value with every object's keys in another order."""
    if isinstance(value, dict):
        items = list(value.items())
        rng.shuffle(items)
        return {k: shuffled(v, rng) for k, v in items}
    if isinstance(value, list):
        return [shuffled(v, rng) for v in value]
    return value


def respelled(value: Any) -> Any:
    """The same value with every whole number as a float (what a double carries)."""
    if isinstance(value, dict):
        return {k: respelled(v) for k, v in value.items()}
    if isinstance(value, list):
        return [respelled(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool):
        return float(value)
    return value


def strictly_equal(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(strictly_equal(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(strictly_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@settings(max_examples=300)
@given(OBJECTS, st.randoms(use_true_random=False))
def test_key_order_does_not_matter(inputs: dict[str, Any], rng: random.Random) -> None:
    assert identity(shuffled(inputs, rng)) == identity(inputs)


@settings(max_examples=300)
@given(OBJECTS)
def test_equivalent_number_spellings_collide(inputs: dict[str, Any]) -> None:
    assert identity(respelled(inputs)) == identity(inputs)


@settings(max_examples=200)
@given(OBJECTS)
def test_inputs_through_protobuf_keep_their_identity(inputs: dict[str, Any]) -> None:
    """What the client sends (a Struct of doubles) and the server converts hashes like the original."""
    if "\\u0000" in json.dumps(inputs):
        return  # refused by the server (NUL), see test_datasets_bad_input.py
    record = dpb.DatasetRecord(inputs=to_struct(inputs))
    converted = to_input(record, Violations(), "r")
    assert converted is not None
    assert identity(converted.inputs) == identity(inputs)


@settings(max_examples=500)
@given(JSON)
def test_the_canonical_text_means_exactly_its_value(value: Any) -> None:
    text = canonical_json(value)
    assert strictly_equal(json.loads(text), normalize(value))
    assert text == canonical_json(json.loads(text))  # a fixed point


@settings(max_examples=300)
@given(OBJECTS, OBJECTS)
def test_different_inputs_do_not_collide(a: dict[str, Any], b: dict[str, Any]) -> None:
    if strictly_equal(normalize(a), normalize(b)):
        assert identity(a) == identity(b)
    else:
        assert canonical_json(a) != canonical_json(b) and identity(a) != identity(b)


def test_the_documented_form() -> None:
    value = {"b": [1.0, 0.7, 1e100, -0.0, 2**60, 1.5e-07], "a": {"y": True, "x": None}, "é": 'ü\n"\\'}
    assert canonical_json(value) == (
        '{"a":{"x":null,"y":true},"b":[1,0.7,1e+100,0,1.152921504606847e+18,1.5e-07],"é":"ü\\n\\"\\\\"}'
    )
    assert identity({"q": 1}) == identity({"q": 1.0}) != identity({"q": True}) != identity({"q": "1"})
    assert identity({"a": [1, 2]}) != identity({"a": [2, 1]})
    assert canonical_json(2**53) == "9007199254740992" and canonical_json(2**53 + 2) == "9007199254740994.0"


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf, 10**400, {1: "x"}, object()])
def test_values_without_a_json_form_are_refused(bad: Any) -> None:
    with pytest.raises(NotJson):
        canonical_json({"k": bad})


# Values for the comparison of the fast path (orjson) with the reference encoder: any text
# (control characters, non-ASCII, astral), numbers of every magnitude, ints up to 64 bits.
WIDE = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**64), 2**64),
        st.floats(allow_nan=False, allow_infinity=False),
        st.floats(min_value=-1e-3, max_value=1e-3),
        st.text(st.characters(blacklist_categories=("Cs",)), max_size=8),
        st.sampled_from(["null", "1e-3", "0.00001", "\x00\x1f\x7f\u2028", "e-mail"]),
    ),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=16,
)


@settings(max_examples=1000)
@given(WIDE)
def test_the_fast_encoder_writes_the_reference_text(value: Any) -> None:
    assert dumps(value) == reference_dumps(value)


class Text(str):
    pass


def _nested(depth: int) -> Any:
    value: Any = []
    for _ in range(depth):
        value = [value]
    return value


@pytest.mark.parametrize(
    "value",
    [
        1e-05, -1.5e-07, 5e-324, 0.0001, 1e16, 1e22, -0.0, 2**53 + 2.0, 1.7976931348623157e308,  # numbers
        2**63, 2**64, -(2**63) - 1, 10**30,  # beyond orjson's 64-bit integers
        {"x": None}, "null", {"a": "1e-3"},  # the marks inside strings and as values
        "\ud800", {"\udfff": 1},  # lone surrogates (not UTF-8)
        Text("a"), {Text("k"): 1},  # subclasses
        {1: "x"}, {None: 1},  # non-string keys, as the reference writes them
        _nested(300),  # deeper than orjson goes
        (1, 2),
    ],
)  # fmt: skip
def test_the_fast_encoder_falls_back_where_orjson_differs(value: Any) -> None:
    assert dumps(value) == reference_dumps(value)


@pytest.mark.parametrize("bad", [math.nan, -math.inf, object(), {1: "x", "a": 2}])
def test_the_fast_encoder_refuses_what_the_reference_refuses(bad: Any) -> None:
    with pytest.raises((ValueError, TypeError)) as fast:
        dumps({"k": bad})
    with pytest.raises((ValueError, TypeError)) as reference:
        reference_dumps({"k": bad})
    assert type(fast.value) is type(reference.value)
