"""JSON text for JSON columns (store.engine.json_text) and its reader (json_loads)."""

from __future__ import annotations

import json

import pytest

from store.engine import json_loads, json_text

VALUES = [
    {"b": 1, "a": [0.7, True, None, "x"]},
    "naïve ✓ 𝄞",
    {"ctl": '\x01\n\t"\\', "slash": "a/b"},
    -(2**53),
    1e300,
    [],
]


@pytest.mark.parametrize("value", VALUES)
def test_json_text_is_compact_json_that_reads_back(value: object) -> None:
    text = json_text(value)
    assert json.loads(text) == value == json_loads(text)


def test_compact_with_non_ascii_written_as_itself() -> None:
    assert json_text({"k": "é𝄞", "l": [1, 2.5]}) == '{"k":"é𝄞","l":[1,2.5]}'


def test_integers_beyond_64_bits_fall_back_to_json() -> None:
    """orjson refuses them (a sum in a dataset field's statistics can get there); json writes them."""
    big = {"sum": 2**70, "n": [2**64]}
    assert json_text(big) == '{"sum":1180591620717411303424,"n":[18446744073709551616]}'
    assert json_loads(json_text(big)) == big
