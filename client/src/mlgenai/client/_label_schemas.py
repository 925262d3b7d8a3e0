"""Label schema helpers of :class:`mlgenai.client.Client` (dicts in, dicts out).

A schema comes back as a dict with the fields of ``mlgenai.v1.LabelSchema``: ``type`` is
"FEEDBACK" or "EXPECTATION", times are timezone-aware ``datetime``, and exactly one of
``pass_fail``, ``categorical``, ``numeric``, ``text`` is a dict (the others None).

>>> tone = client.create_label_schema(exp_id, "tone", categorical=["calm", "angry"])
>>> client.create_label_schema(exp_id, "correct", pass_fail={}, type="expectation")
>>> client.update_label_schema(tone["schema_id"], options=["calm", "angry", "neutral"])
>>> [s["name"] for s in client.list_label_schemas(exp_id)]
['correct', 'tone']
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import field_mask_pb2

from mlgenai.client.convert import to_dict
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import label_schema_pb2 as lpb, labeling_service_pb2 as svc
from mlgenai.v1.labeling_service_pb2_grpc import LabelingServiceStub

_TYPES = {"FEEDBACK": lpb.LABEL_SCHEMA_TYPE_FEEDBACK, "EXPECTATION": lpb.LABEL_SCHEMA_TYPE_EXPECTATION}
# update_label_schema keyword -> update mask path
_UPDATE_PATHS = {
    "name": "name",
    "title": "title",
    "instruction": "instruction",
    "enable_comment": "enable_comment",
    "options": "categorical.options",
    "min_value": "numeric.min_value",
    "max_value": "numeric.max_value",
    "max_length": "text.max_length",
}


def _type(name: str) -> lpb.LabelSchemaType.ValueType:
    number = _TYPES.get(name.upper())
    if number is None:
        raise ValueError("type must be 'feedback' or 'expectation'")
    return number


def _set_input(
    schema: lpb.LabelSchema,
    pass_fail: Mapping[str, Any] | None,
    categorical: Mapping[str, Any] | Sequence[str] | None,
    numeric: Mapping[str, Any] | None,
    text: Mapping[str, Any] | None,
) -> None:
    given = [k for k, v in (("pass_fail", pass_fail), ("categorical", categorical), ("numeric", numeric),
                            ("text", text)) if v is not None]  # fmt: skip
    if len(given) != 1:
        raise ValueError(f"give exactly one of pass_fail, categorical, numeric, text (got {given or 'none'})")
    if pass_fail is not None:
        schema.pass_fail.CopyFrom(lpb.PassFailInput(**pass_fail))
    elif categorical is not None:
        if isinstance(categorical, Mapping):
            schema.categorical.CopyFrom(lpb.CategoricalInput(**categorical))
        else:
            if isinstance(categorical, str):
                raise TypeError("categorical: give a list of options, not a string")
            schema.categorical.CopyFrom(lpb.CategoricalInput(options=list(categorical)))
    elif numeric is not None:
        schema.numeric.CopyFrom(lpb.NumericInput(**numeric))
    elif text is not None:
        schema.text.CopyFrom(lpb.TextInput(**text))


class LabelSchemasMixin:
    labeling: LabelingServiceStub

    def create_label_schema(
        self,
        experiment_id: str,
        name: str,
        *,
        type: str = "feedback",
        pass_fail: Mapping[str, Any] | None = None,
        categorical: Mapping[str, Any] | Sequence[str] | None = None,
        numeric: Mapping[str, Any] | None = None,
        text: Mapping[str, Any] | None = None,
        title: str = "",
        instruction: str = "",
        enable_comment: bool = False,
    ) -> dict[str, Any]:
        """Create a schema with exactly one input: ``pass_fail={}`` (or with ``positive_label``,
        ``negative_label``), ``categorical=["a", "b"]`` (or ``{"options": [...],
        "multi_select": True}``), ``numeric={"min_value": 1, "max_value": 5}`` (bounds
        optional), ``text={"max_length": 500}`` (or ``{}``). ``type`` is "feedback" or
        "expectation"."""
        schema = lpb.LabelSchema(
            experiment_id=experiment_id,
            name=name,
            type=_type(type),
            title=title,
            instruction=instruction,
            enable_comment=enable_comment,
        )
        _set_input(schema, pass_fail, categorical, numeric, text)
        return to_dict(self.labeling.CreateLabelSchema(svc.CreateLabelSchemaRequest(label_schema=schema)))

    def get_label_schema(self, schema_id: str) -> dict[str, Any]:
        return to_dict(self.labeling.GetLabelSchema(svc.GetLabelSchemaRequest(schema_id=schema_id)))

    def list_label_schemas(self, experiment_id: str, *, page_size: int = 0) -> list[dict[str, Any]]:
        """Every schema of the experiment, by name (all pages)."""
        req = svc.ListLabelSchemasRequest(experiment_id=experiment_id, page_size=page_size)
        return [to_dict(s) for s in iter_pages(self.labeling.ListLabelSchemas, req, "label_schemas")]

    def update_label_schema(self, schema_id: str, **changes: Any) -> dict[str, Any]:
        """Change ``name``, ``title``, ``instruction``, ``enable_comment``, ``options``
        (categorical: the new list), ``min_value`` / ``max_value`` (numeric; None removes the
        bound) or ``max_length`` (text); returns the schema."""
        unknown = sorted(set(changes) - set(_UPDATE_PATHS))
        if unknown:
            raise TypeError(f"cannot update {', '.join(unknown)} (updatable: {', '.join(_UPDATE_PATHS)})")
        if not changes:
            return self.get_label_schema(schema_id)
        schema = lpb.LabelSchema(schema_id=schema_id)
        for key in ("name", "title", "instruction", "enable_comment"):
            if key in changes:
                setattr(schema, key, changes[key])
        if "options" in changes:
            schema.categorical.options.extend(changes["options"])
        if "min_value" in changes or "max_value" in changes:
            schema.numeric.CopyFrom(
                lpb.NumericInput(min_value=changes.get("min_value"), max_value=changes.get("max_value"))
            )
        if "max_length" in changes:
            schema.text.max_length = changes["max_length"]
        mask = field_mask_pb2.FieldMask(paths=[_UPDATE_PATHS[k] for k in changes])
        req = svc.UpdateLabelSchemaRequest(label_schema=schema, update_mask=mask)
        return to_dict(self.labeling.UpdateLabelSchema(req))

    def delete_label_schema(self, schema_id: str) -> None:
        """Delete a schema no labeling session asks for; assessments under its name stay."""
        self.labeling.DeleteLabelSchema(svc.DeleteLabelSchemaRequest(schema_id=schema_id))
