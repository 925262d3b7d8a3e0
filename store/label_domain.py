"""Label schemas (SPEC §8.1): the domain object, its validation rules and the label-value rules.

A schema's input is one of four kinds, with its settings in ``config``:

* ``pass_fail``: ``{"positive_label": str, "negative_label": str}`` (defaults "Pass" / "Fail");
  the answer is a bool.
* ``categorical``: ``{"options": [str, …], "multi_select": bool}``; the answer is one option,
  or with ``multi_select`` a non-empty list of distinct options.
* ``numeric``: ``{"min_value": float | None, "max_value": float | None}`` (inclusive, None:
  unbounded); the answer is a finite number.
* ``text``: ``{"max_length": int}`` (1–65,536; 0 on input means 65,536); the answer is a string.

Everything here is pure: the server validates requests with ``*_violations``, the repository
merges updates with ``apply_changes``, and SubmitLabels checks answers with ``label_error``.
Violations name fields relative to the resource (``name``, ``categorical.options[2]``) after a
caller-given prefix (``label_schema.``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from store.errors import FieldViolation, InvalidArgument

FEEDBACK = "feedback"
EXPECTATION = "expectation"
TYPES = (FEEDBACK, EXPECTATION)

PASS_FAIL = "pass_fail"
CATEGORICAL = "categorical"
NUMERIC = "numeric"
TEXT = "text"
INPUT_KINDS = (PASS_FAIL, CATEGORICAL, NUMERIC, TEXT)

NAME_MAX = 250
TITLE_MAX = 250
INSTRUCTION_MAX = 4_000
OPTIONS_MAX = 50
OPTION_MAX = 64  # characters of an option or a pass/fail label
TEXT_MAX_LENGTH = 65_536
DEFAULT_POSITIVE = "Pass"
DEFAULT_NEGATIVE = "Fail"

_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True, slots=True)
class LabelSchemaDef:
    """A stored label schema; ``config`` holds the input kind's settings (see the module doc)."""

    schema_id: str
    experiment_id: str
    name: str
    type: str
    title: str
    instruction: str
    enable_comment: bool
    input_kind: str
    config: dict[str, Any]
    create_time: int
    update_time: int


@dataclass(frozen=True, slots=True)
class NewLabelSchema:
    """What CreateLabelSchema asks for, validated and with the input's defaults filled in."""

    experiment_id: str
    name: str
    type: str
    input_kind: str
    config: dict[str, Any]
    title: str = ""
    instruction: str = ""
    enable_comment: bool = False


@dataclass(frozen=True, slots=True)
class LabelSchemaChanges:
    """The fields an UpdateLabelSchema sets (None: unchanged).

    ``config`` holds the changed settings of input kind ``input_kind`` (a key present with
    None clears a numeric bound); ``input_kind`` is None when no input setting changes.
    """

    name: str | None = None
    title: str | None = None
    instruction: str | None = None
    enable_comment: bool | None = None
    input_kind: str | None = None
    config: dict[str, Any] = field(default_factory=dict)


# ---------------------------------------------------------------- schema validation


def _clip(value: object, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit] + "…"


def name_violations(name: str, field_name: str = "name") -> list[FieldViolation]:
    """A schema name: 1–250 characters, not blank, no control characters."""
    if not name:
        return [FieldViolation(field_name, "required")]
    out = []
    if len(name) > NAME_MAX:
        out.append(FieldViolation(field_name, f"at most {NAME_MAX} characters (got {len(name)})"))
    if _CONTROL.search(name):
        out.append(FieldViolation(field_name, "must not contain control characters"))
    elif not name.strip():
        out.append(FieldViolation(field_name, "must not be blank"))
    return out


def text_violations(value: str, field_name: str, max_len: int) -> list[FieldViolation]:
    """An optional free text (title, instruction): at most ``max_len`` characters, no NUL."""
    out = []
    if len(value) > max_len:
        out.append(FieldViolation(field_name, f"at most {max_len} characters (got {len(value)})"))
    if "\x00" in value:
        out.append(FieldViolation(field_name, "must not contain the NUL character"))
    return out


def _label_violations(value: str, field_name: str, what: str) -> list[FieldViolation]:
    """An option or a pass/fail label: 1–64 characters, not blank, no control characters."""
    if not value or not value.strip():
        return [FieldViolation(field_name, f"{what} must not be empty or blank")]
    if len(value) > OPTION_MAX:
        return [FieldViolation(field_name, f"{what} has at most {OPTION_MAX} characters (got {len(value)})")]
    if _CONTROL.search(value):
        return [FieldViolation(field_name, f"{what} must not contain control characters")]
    return []


def normalized_config(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """``config`` with the input's defaults filled in (labels "Pass"/"Fail", max_length 0)."""
    if kind == PASS_FAIL:
        return {
            "positive_label": config.get("positive_label") or DEFAULT_POSITIVE,
            "negative_label": config.get("negative_label") or DEFAULT_NEGATIVE,
        }
    if kind == CATEGORICAL:
        return {"options": list(config.get("options") or ()), "multi_select": bool(config.get("multi_select"))}
    if kind == NUMERIC:
        return {"min_value": config.get("min_value"), "max_value": config.get("max_value")}
    if kind == TEXT:
        max_length = config.get("max_length") or 0
        return {"max_length": TEXT_MAX_LENGTH if max_length == 0 else max_length}
    raise ValueError(f"unknown input kind {kind!r}")


def _pass_fail_violations(config: dict[str, Any], at: str) -> list[FieldViolation]:
    positive, negative = config["positive_label"], config["negative_label"]
    out = _label_violations(positive, at + "positive_label", "positive_label")
    out += _label_violations(negative, at + "negative_label", "negative_label")
    if positive == negative:
        out.append(FieldViolation(at + "negative_label", f"must differ from positive_label ({_clip(positive)})"))
    return out


def _categorical_violations(config: dict[str, Any], at: str) -> list[FieldViolation]:
    options = config["options"]
    out = []
    if not 1 <= len(options) <= OPTIONS_MAX:
        out.append(FieldViolation(at + "options", f"1 to {OPTIONS_MAX} options (got {len(options)})"))
    seen: set[str] = set()
    for i, option in enumerate(options[: OPTIONS_MAX + 1]):
        out += _label_violations(option, f"{at}options[{i}]", "an option")
        if option in seen:
            out.append(FieldViolation(f"{at}options[{i}]", f"duplicate option {_clip(option)}"))
        seen.add(option)
    return out


def _numeric_violations(config: dict[str, Any], at: str) -> list[FieldViolation]:
    low, high = config["min_value"], config["max_value"]
    out = [
        FieldViolation(at + name, f"must be a finite number (got {bound})")
        for name, bound in (("min_value", low), ("max_value", high))
        if bound is not None and not math.isfinite(bound)
    ]
    if not out and low is not None and high is not None and not low < high:
        out.append(FieldViolation(at + "max_value", f"must be greater than min_value ({low} >= {high})"))
    return out


def _text_violations(config: dict[str, Any], at: str) -> list[FieldViolation]:
    max_length = config["max_length"]
    if not 1 <= max_length <= TEXT_MAX_LENGTH:
        return [FieldViolation(at + "max_length", f"0 to {TEXT_MAX_LENGTH} (got {max_length})")]
    return []


_CONFIG_RULES: dict[str, Callable[[dict[str, Any], str], list[FieldViolation]]] = {
    PASS_FAIL: _pass_fail_violations,
    CATEGORICAL: _categorical_violations,
    NUMERIC: _numeric_violations,
    TEXT: _text_violations,
}


def config_violations(kind: str, config: dict[str, Any], prefix: str = "") -> list[FieldViolation]:
    """The problems of a normalized ``config`` of input kind ``kind``."""
    return _CONFIG_RULES[kind](config, f"{prefix}{kind}.")


def new_schema_violations(new: NewLabelSchema, prefix: str = "") -> list[FieldViolation]:
    """Every problem of a schema to create (its config already normalized)."""
    out = name_violations(new.name, prefix + "name")
    out += text_violations(new.title, prefix + "title", TITLE_MAX)
    out += text_violations(new.instruction, prefix + "instruction", INSTRUCTION_MAX)
    if new.type not in TYPES:
        out.append(FieldViolation(prefix + "type", "required: FEEDBACK or EXPECTATION"))
    if new.input_kind not in INPUT_KINDS:
        out.append(FieldViolation(prefix + "input", "required: one of pass_fail, categorical, numeric, text"))
    else:
        out += config_violations(new.input_kind, new.config, prefix)
    return out


def apply_changes(current: LabelSchemaDef, changes: LabelSchemaChanges, prefix: str = "") -> LabelSchemaDef:
    """``current`` with ``changes`` applied (times unchanged), validated as a whole.

    Changing settings of another input kind than the schema's is IMMUTABLE_FIELD; a result
    that breaks a rule (e.g. a new min_value above the kept max_value) is INVALID_FIELD.
    """
    config = current.config
    if changes.input_kind is not None:
        if changes.input_kind != current.input_kind:
            message = (
                f"label schema {current.name!r} has input kind {current.input_kind}; "
                f"its input kind is immutable, so {changes.input_kind} settings cannot be changed"
            )
            raise InvalidArgument("IMMUTABLE_FIELD", message, [FieldViolation("update_mask", message)])
        config = normalized_config(current.input_kind, {**current.config, **changes.config})
    updated = replace(
        current,
        name=current.name if changes.name is None else changes.name,
        title=current.title if changes.title is None else changes.title,
        instruction=current.instruction if changes.instruction is None else changes.instruction,
        enable_comment=current.enable_comment if changes.enable_comment is None else changes.enable_comment,
        config=config,
    )
    violations = name_violations(updated.name, prefix + "name")
    violations += text_violations(updated.title, prefix + "title", TITLE_MAX)
    violations += text_violations(updated.instruction, prefix + "instruction", INSTRUCTION_MAX)
    violations += config_violations(updated.input_kind, updated.config, prefix)
    if violations:
        summary = "; ".join(f"{v.field}: {v.description}" for v in violations[:5])
        raise InvalidArgument("INVALID_FIELD", f"invalid request: {summary}", violations)
    return updated


# ---------------------------------------------------------------- label values


def _pass_fail_error(config: dict[str, Any], value: Any) -> str | None:
    if not isinstance(value, bool):
        return f"{_clip(value)} is not a boolean (true = {config['positive_label']!r})"
    return None


def _categorical_error(config: dict[str, Any], value: Any) -> str | None:
    options: list[str] = config["options"]
    if not config["multi_select"]:
        if not isinstance(value, str) or value not in options:
            return f"{_clip(value)} is not one of the options {_clip(options, 300)}"
        return None
    if not isinstance(value, list) or not value:
        return f"{_clip(value)} is not a non-empty list of options (multi-select)"
    unknown = [v for v in value if not isinstance(v, str) or v not in options]
    if unknown:
        return f"{_clip(unknown[0])} is not one of the options {_clip(options, 300)}"
    if len(set(value)) != len(value):
        duplicate = next(v for i, v in enumerate(value) if v in value[:i])
        return f"option {_clip(duplicate)} is given more than once"
    return None


def _numeric_error(config: dict[str, Any], value: Any) -> str | None:
    if not isinstance(value, int | float) or isinstance(value, bool):
        return f"{_clip(value)} is not a number"
    if not math.isfinite(value):
        return f"{value} is not a finite number"
    low, high = config["min_value"], config["max_value"]
    if low is not None and value < low:
        return f"{value} is below the minimum {low}"
    if high is not None and value > high:
        return f"{value} is above the maximum {high}"
    return None


def _text_error(config: dict[str, Any], value: Any) -> str | None:
    max_length = config["max_length"] or TEXT_MAX_LENGTH
    if not isinstance(value, str):
        return f"{_clip(value)} is not a string"
    if not value:
        return "the text is empty"
    if len(value) > max_length:
        return f"the text has {len(value)} characters, more than the maximum {max_length}"
    return None


_VALUE_RULES: dict[str, Callable[[dict[str, Any], Any], str | None]] = {
    PASS_FAIL: _pass_fail_error,
    CATEGORICAL: _categorical_error,
    NUMERIC: _numeric_error,
    TEXT: _text_error,
}


def label_error(schema: LabelSchemaDef, value: Any) -> str | None:
    """Why ``value`` (a plain Python value from ``google.protobuf.Value``) is not a valid answer
    to ``schema``, naming the schema and the rule; None when it is valid."""
    problem = _VALUE_RULES[schema.input_kind](schema.config, value)
    return None if problem is None else f"label schema {schema.name!r}: {problem}"


def assessment_value(schema: LabelSchemaDef, value: Any) -> Any:
    """A valid answer as the assessment stores it: bool, str or list of str (in the order
    given), float, str."""
    kind = schema.input_kind
    if kind == PASS_FAIL:
        return bool(value)
    if kind == CATEGORICAL:
        return list(value) if isinstance(value, list) else str(value)
    if kind == NUMERIC:
        return float(value)
    if kind == TEXT:
        return str(value)
    raise ValueError(f"unknown input kind {kind!r}")
