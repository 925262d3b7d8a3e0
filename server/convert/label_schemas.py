"""LabelSchema: proto <-> domain (``store/label_domain.py``), and the checks of its ids."""

from __future__ import annotations

import re
from typing import Any

from mlgenai.v1 import label_schema_pb2 as pb
from server.convert.common import timestamp
from server.convert.datasets import EXPERIMENT_ID
from server.validation import Violations
from store import limits
from store.label_domain import (
    CATEGORICAL,
    EXPECTATION,
    FEEDBACK,
    NUMERIC,
    PASS_FAIL,
    TEXT,
    LabelSchemaDef,
    NewLabelSchema,
    new_schema_violations,
    normalized_config,
)

SCHEMA_ID = re.compile(r"ls-[0-9a-f]{32}")
TYPES: dict[int, str] = {pb.LABEL_SCHEMA_TYPE_FEEDBACK: FEEDBACK, pb.LABEL_SCHEMA_TYPE_EXPECTATION: EXPECTATION}
_TYPE_NUMBERS = {name: number for number, name in TYPES.items()}


def check_schema_id(checks: Violations, field: str, value: str) -> None:
    """A label schema id: 'ls-' + 32 lowercase hex characters."""
    if not value:
        checks.add(field, "required")
    elif not SCHEMA_ID.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not a label schema id ('ls-' + 32 lowercase hex characters)")


def check_experiment_id(checks: Violations, field: str, value: str) -> None:
    if not EXPERIMENT_ID.fullmatch(value) or int(value) > limits.ID_INT_MAX:
        checks.add(field, f"required: an experiment id (a decimal integer), got {value[:50]!r}")


def input_config(schema: pb.LabelSchema, kind: str) -> dict[str, Any]:
    """The raw settings of input ``kind`` in ``schema`` (defaults not yet filled in)."""
    if kind == PASS_FAIL:
        pf = schema.pass_fail
        return {"positive_label": pf.positive_label, "negative_label": pf.negative_label}
    if kind == CATEGORICAL:
        return {"options": list(schema.categorical.options), "multi_select": schema.categorical.multi_select}
    if kind == NUMERIC:
        num = schema.numeric
        return {
            "min_value": num.min_value if num.HasField("min_value") else None,
            "max_value": num.max_value if num.HasField("max_value") else None,
        }
    if kind == TEXT:
        return {"max_length": schema.text.max_length}
    raise ValueError(f"unknown input kind {kind!r}")


def new_schema(schema: pb.LabelSchema, prefix: str = "label_schema.") -> NewLabelSchema:
    """The schema to create; INVALID_ARGUMENT (INVALID_FIELD) naming every bad field."""
    checks = Violations()
    check_experiment_id(checks, prefix + "experiment_id", schema.experiment_id)
    kind = schema.WhichOneof("input") or ""
    new = NewLabelSchema(
        experiment_id=schema.experiment_id,
        name=schema.name,
        type=TYPES.get(schema.type, ""),
        input_kind=kind,
        config=normalized_config(kind, input_config(schema, kind)) if kind else {},
        title=schema.title,
        instruction=schema.instruction,
        enable_comment=schema.enable_comment,
    )
    checks.items.extend(new_schema_violations(new, prefix))
    checks.raise_if_any()
    return new


def to_proto(schema: LabelSchemaDef) -> pb.LabelSchema:
    out = pb.LabelSchema(
        schema_id=schema.schema_id,
        experiment_id=schema.experiment_id,
        name=schema.name,
        type=_TYPE_NUMBERS[schema.type],  # type: ignore[arg-type]
        title=schema.title,
        instruction=schema.instruction,
        enable_comment=schema.enable_comment,
        create_time=timestamp(schema.create_time),
        update_time=timestamp(schema.update_time),
    )
    config = schema.config
    if schema.input_kind == PASS_FAIL:
        out.pass_fail.CopyFrom(
            pb.PassFailInput(positive_label=config["positive_label"], negative_label=config["negative_label"])
        )
    elif schema.input_kind == CATEGORICAL:
        out.categorical.CopyFrom(pb.CategoricalInput(options=config["options"], multi_select=config["multi_select"]))
    elif schema.input_kind == NUMERIC:
        out.numeric.CopyFrom(pb.NumericInput(min_value=config["min_value"], max_value=config["max_value"]))
    elif schema.input_kind == TEXT:
        out.text.CopyFrom(pb.TextInput(max_length=config["max_length"]))
    return out
