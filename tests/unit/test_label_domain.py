"""Label values against their schema (``label_error``, ``assessment_value``) and the schema
rules (``config_violations``, ``apply_changes``) of ``store/label_domain.py``."""

from __future__ import annotations

import math
from typing import Any

import pytest

from store.errors import InvalidArgument
from store.label_domain import (
    CATEGORICAL,
    NUMERIC,
    PASS_FAIL,
    TEXT,
    LabelSchemaChanges,
    LabelSchemaDef,
    NewLabelSchema,
    apply_changes,
    assessment_value,
    config_violations,
    label_error,
    name_violations,
    new_schema_violations,
    normalized_config,
)


def schema(kind: str, name: str = "q", **config: Any) -> LabelSchemaDef:
    return LabelSchemaDef(
        schema_id="ls-" + "0" * 32,
        experiment_id="1",
        name=name,
        type="feedback",
        title="",
        instruction="",
        enable_comment=False,
        input_kind=kind,
        config=normalized_config(kind, config),
        create_time=1,
        update_time=1,
    )


PASS = schema(PASS_FAIL, "correct")
TONE = schema(CATEGORICAL, "tone", options=["calm", "angry"])
TAGS = schema(CATEGORICAL, "topics", options=["a", "b", "c"], multi_select=True)
SCORE = schema(NUMERIC, "score", min_value=1.0, max_value=5.0)
ANY_NUMBER = schema(NUMERIC, "any")
LOW_ONLY = schema(NUMERIC, "low", min_value=0.0)
NOTE = schema(TEXT, "note", max_length=5)
LONG_NOTE = schema(TEXT, "long")


# -- label_error: valid values ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "value", "stored"),
    [
        (PASS, True, True),
        (PASS, False, False),
        (TONE, "calm", "calm"),
        (TONE, "angry", "angry"),
        (TAGS, ["c", "a"], ["c", "a"]),  # the order given is kept
        (TAGS, ["b"], ["b"]),
        (SCORE, 1, 1.0),
        (SCORE, 5.0, 5.0),  # bounds are inclusive
        (SCORE, 3.5, 3.5),
        (ANY_NUMBER, -1e300, -1e300),
        (ANY_NUMBER, 10**20, 1e20),
        (LOW_ONLY, 0, 0.0),
        (LOW_ONLY, 1e9, 1e9),
        (NOTE, "x", "x"),
        (NOTE, "12345", "12345"),
        (NOTE, "ééééé", "ééééé"),  # characters, not bytes
        (LONG_NOTE, "y" * 65_536, "y" * 65_536),
    ],
)
def test_valid_values(s: LabelSchemaDef, value: Any, stored: Any) -> None:
    assert label_error(s, value) is None
    out = assessment_value(s, value)
    assert out == stored and type(out) is type(stored)


# -- label_error: invalid values -------------------------------------------------------------


@pytest.mark.parametrize(
    ("s", "value", "rule"),
    [
        (PASS, None, "not a boolean"),
        (PASS, 1, "not a boolean"),
        (PASS, 0.0, "not a boolean"),
        (PASS, "true", "not a boolean"),
        (PASS, "Pass", "not a boolean"),
        (PASS, [True], "not a boolean"),
        (TONE, "loud", "is not one of the options ['calm', 'angry']"),
        (TONE, "Calm", "is not one of the options"),
        (TONE, "", "is not one of the options"),
        (TONE, None, "is not one of the options"),
        (TONE, ["calm"], "is not one of the options"),  # a list on a single-select schema
        (TONE, 1, "is not one of the options"),
        (TAGS, [], "non-empty list"),
        (TAGS, "a", "non-empty list"),  # a bare option on a multi-select schema
        (TAGS, None, "non-empty list"),
        (TAGS, ["a", "d"], "'d' is not one of the options"),
        (TAGS, ["a", 1], "1 is not one of the options"),
        (TAGS, ["a", ["b"]], "is not one of the options"),
        (TAGS, ["a", "b", "a"], "'a' is given more than once"),
        (SCORE, True, "not a number"),
        (SCORE, False, "not a number"),
        (SCORE, "3", "not a number"),
        (SCORE, None, "not a number"),
        (SCORE, [3], "not a number"),
        (SCORE, math.nan, "not a finite number"),
        (ANY_NUMBER, math.inf, "not a finite number"),
        (ANY_NUMBER, -math.inf, "not a finite number"),
        (SCORE, 0.999, "below the minimum 1.0"),
        (SCORE, 5.0001, "above the maximum 5.0"),
        (LOW_ONLY, -1, "below the minimum"),
        (NOTE, "", "empty"),
        (NOTE, "123456", "6 characters, more than the maximum 5"),
        (NOTE, 5, "not a string"),
        (NOTE, None, "not a string"),
        (NOTE, ["x"], "not a string"),
        (LONG_NOTE, "y" * 65_537, "more than the maximum 65536"),
    ],
)
def test_invalid_values(s: LabelSchemaDef, value: Any, rule: str) -> None:
    message = label_error(s, value)
    assert message is not None
    assert message.startswith(f"label schema {s.name!r}: ")
    assert rule in message


def test_error_messages_clip_long_values() -> None:
    message = label_error(TONE, "x" * 10_000)
    assert message is not None and len(message) < 200


def test_pass_fail_labels_default_and_keep() -> None:
    assert PASS.config == {"positive_label": "Pass", "negative_label": "Fail"}
    custom = schema(PASS_FAIL, positive_label="Yes", negative_label="No")
    assert custom.config == {"positive_label": "Yes", "negative_label": "No"}
    assert normalized_config(TEXT, {"max_length": 0}) == {"max_length": 65_536}
    assert normalized_config(TEXT, {"max_length": 7}) == {"max_length": 7}


# -- schema rules ----------------------------------------------------------------------------


def fields_of(kind: str, **config: Any) -> list[str]:
    return [v.field for v in config_violations(kind, normalized_config(kind, config), "s.")]


@pytest.mark.parametrize(
    ("kind", "config", "fields"),
    [
        (PASS_FAIL, {}, []),
        (PASS_FAIL, {"positive_label": "p" * 64, "negative_label": "n"}, []),
        (PASS_FAIL, {"positive_label": "p" * 65}, ["s.pass_fail.positive_label"]),
        (PASS_FAIL, {"positive_label": "Fail"}, ["s.pass_fail.negative_label"]),
        (PASS_FAIL, {"positive_label": " "}, ["s.pass_fail.positive_label"]),
        (PASS_FAIL, {"negative_label": "a\nb"}, ["s.pass_fail.negative_label"]),
        (CATEGORICAL, {"options": ["a"]}, []),
        (CATEGORICAL, {"options": [f"o{i}" for i in range(50)]}, []),
        (CATEGORICAL, {"options": []}, ["s.categorical.options"]),
        (CATEGORICAL, {"options": [f"o{i}" for i in range(51)]}, ["s.categorical.options"]),
        (CATEGORICAL, {"options": ["a", "b", "a"]}, ["s.categorical.options[2]"]),
        (CATEGORICAL, {"options": ["a", ""]}, ["s.categorical.options[1]"]),
        (CATEGORICAL, {"options": ["o" * 65]}, ["s.categorical.options[0]"]),
        (CATEGORICAL, {"options": ["o" * 64]}, []),
        (CATEGORICAL, {"options": ["a\x00"]}, ["s.categorical.options[0]"]),
        (NUMERIC, {}, []),
        (NUMERIC, {"min_value": -1.5, "max_value": 2.0}, []),
        (NUMERIC, {"min_value": 2.0, "max_value": 2.0}, ["s.numeric.max_value"]),
        (NUMERIC, {"min_value": 3.0, "max_value": 2.0}, ["s.numeric.max_value"]),
        (NUMERIC, {"min_value": math.nan}, ["s.numeric.min_value"]),
        (NUMERIC, {"max_value": math.inf}, ["s.numeric.max_value"]),
        (NUMERIC, {"min_value": -math.inf, "max_value": 1.0}, ["s.numeric.min_value"]),
        (TEXT, {}, []),
        (TEXT, {"max_length": 1}, []),
        (TEXT, {"max_length": 65_536}, []),
        (TEXT, {"max_length": 65_537}, ["s.text.max_length"]),
        (TEXT, {"max_length": -1}, ["s.text.max_length"]),
    ],
)
def test_config_rules(kind: str, config: dict[str, Any], fields: list[str]) -> None:
    assert fields_of(kind, **config) == fields


@pytest.mark.parametrize(
    ("name", "ok"),
    [("tone", True), ("n" * 250, True), ("n" * 251, False), ("", False), ("   ", False), ("a\tb", False),
     ("a\x00", False), ("a\x7f", False), ("héllo wörld", True)],
)  # fmt: skip
def test_name_rules(name: str, ok: bool) -> None:
    assert (name_violations(name) == []) is ok


def test_new_schema_needs_type_and_input() -> None:
    new = NewLabelSchema(experiment_id="1", name="q", type="", input_kind="", config={})
    assert sorted(v.field for v in new_schema_violations(new, "p.")) == ["p.input", "p.type"]


# -- apply_changes ---------------------------------------------------------------------------


def test_apply_changes_merges_and_validates_the_whole() -> None:
    updated = apply_changes(SCORE, LabelSchemaChanges(input_kind=NUMERIC, config={"max_value": None}))
    assert updated.config == {"min_value": 1.0, "max_value": None}
    with pytest.raises(InvalidArgument) as info:
        apply_changes(SCORE, LabelSchemaChanges(input_kind=NUMERIC, config={"min_value": 6.0}), "p.")
    assert info.value.reason == "INVALID_FIELD"
    assert [v.field for v in info.value.violations] == ["p.numeric.max_value"]


def test_apply_changes_keeps_the_input_kind() -> None:
    with pytest.raises(InvalidArgument) as info:
        apply_changes(SCORE, LabelSchemaChanges(input_kind=TEXT, config={"max_length": 5}))
    assert info.value.reason == "IMMUTABLE_FIELD"


def test_apply_changes_to_nothing_is_equal() -> None:
    assert apply_changes(TONE, LabelSchemaChanges(name="tone", input_kind=CATEGORICAL, config={})) == TONE
    renamed = apply_changes(TONE, LabelSchemaChanges(name="mood", enable_comment=True))
    assert (renamed.name, renamed.enable_comment, renamed.config) == ("mood", True, TONE.config)
