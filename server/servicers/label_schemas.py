"""LabelingService: CreateLabelSchema, GetLabelSchema, ListLabelSchemas, UpdateLabelSchema,
DeleteLabelSchema (SPEC §8.1)."""

from __future__ import annotations

from typing import Any

import grpc

from mlgenai.v1 import label_schema_pb2, labeling_service_pb2 as pb
from server.convert.common import now_ms
from server.convert.label_schemas import check_experiment_id, check_schema_id, input_config, new_schema, to_proto
from server.field_masks import mask_paths
from server.idempotency import idempotent_write
from server.validation import Violations
from store.domain import SearchQuery
from store.errors import FieldViolation, InvalidArgument
from store.label_domain import (
    CATEGORICAL,
    INSTRUCTION_MAX,
    NUMERIC,
    TEXT,
    TITLE_MAX,
    LabelSchemaChanges,
    config_violations,
    name_violations,
    normalized_config,
    text_violations,
)
from store.query.keyset import page_size_of
from store.uow import Database

Ctx = grpc.ServicerContext
LabelSchema = label_schema_pb2.LabelSchema
PREFIX = "label_schema."

# Update mask paths (see UpdateLabelSchema in labeling_service.proto).
_INPUT_PATHS = {
    "categorical.options": (CATEGORICAL, "options"),
    "numeric.min_value": (NUMERIC, "min_value"),
    "numeric.max_value": (NUMERIC, "max_value"),
    "text.max_length": (TEXT, "max_length"),
}
_MUTABLE = {"name", "title", "instruction", "enable_comment", *_INPUT_PATHS}
_OUTPUT_ONLY = {"schema_id", "create_time", "update_time"}
_IMMUTABLE = {"experiment_id", "type", "pass_fail", "categorical", "numeric", "text", "categorical.multi_select"}


def _valid_schema_id(field: str, schema_id: str) -> None:
    checks = Violations()
    check_schema_id(checks, field, schema_id)
    checks.raise_if_any()


def _immutable(paths: list[str]) -> InvalidArgument:
    message = f"update_mask: {', '.join(paths)} cannot change (the type, the input kind and multi_select are fixed)"
    return InvalidArgument(
        "IMMUTABLE_FIELD", message, [FieldViolation("update_mask", f"path {p!r} is immutable") for p in paths]
    )


def _changes(request: pb.UpdateLabelSchemaRequest) -> LabelSchemaChanges:
    """The requested changes, with every check that needs no stored state."""
    schema = request.label_schema
    _valid_schema_id(PREFIX + "schema_id", schema.schema_id)
    if not request.update_mask.paths:
        raise InvalidArgument.field("update_mask", "required: the paths to update")
    immutable = [p for p in request.update_mask.paths if p in _IMMUTABLE]
    if immutable:
        raise _immutable(immutable)
    paths = mask_paths(request.update_mask, schema, mutable=_MUTABLE, output_only=_OUTPUT_ONLY)
    kinds = sorted({_INPUT_PATHS[p][0] for p in paths if p in _INPUT_PATHS})
    if len(kinds) > 1:
        raise _immutable(sorted(p for p in paths if p in _INPUT_PATHS))
    kind = kinds[0] if kinds else None
    config: dict[str, Any] = {}
    if kind is not None:
        given = input_config(schema, kind)
        config = {key: given[key] for p, (_, key) in _INPUT_PATHS.items() if p in paths}
    checks = Violations()
    if "name" in paths:
        checks.items.extend(name_violations(schema.name, PREFIX + "name"))
    if "title" in paths:
        checks.items.extend(text_violations(schema.title, PREFIX + "title", TITLE_MAX))
    if "instruction" in paths:
        checks.items.extend(text_violations(schema.instruction, PREFIX + "instruction", INSTRUCTION_MAX))
    if kind is not None:  # what can be checked without the stored settings
        checks.items.extend(config_violations(kind, normalized_config(kind, config), PREFIX))
    checks.raise_if_any()
    return LabelSchemaChanges(
        name=schema.name if "name" in paths else None,
        title=schema.title if "title" in paths else None,
        instruction=schema.instruction if "instruction" in paths else None,
        enable_comment=schema.enable_comment if "enable_comment" in paths else None,
        input_kind=kind,
        config=config,
    )


class LabelSchemaMethods:
    db: Database

    def CreateLabelSchema(self, request: pb.CreateLabelSchemaRequest, context: Ctx) -> LabelSchema:
        new = new_schema(request.label_schema, PREFIX)
        return idempotent_write(
            self.db,
            "CreateLabelSchema",
            request,
            LabelSchema,
            lambda uow: to_proto(uow.label_schemas.create(new, now_ms())),
        )

    def GetLabelSchema(self, request: pb.GetLabelSchemaRequest, context: Ctx) -> LabelSchema:
        _valid_schema_id("schema_id", request.schema_id)
        return to_proto(self.db.read(lambda uow: uow.label_schemas.get(request.schema_id)))

    def ListLabelSchemas(self, request: pb.ListLabelSchemasRequest, context: Ctx) -> pb.ListLabelSchemasResponse:
        checks = Violations()
        check_experiment_id(checks, "experiment_id", request.experiment_id)
        checks.raise_if_any()
        query = SearchQuery(page_size=page_size_of(request.page_size), page_token=request.page_token)
        page = self.db.read(lambda uow: uow.label_schemas.by_experiment(request.experiment_id, query))
        return pb.ListLabelSchemasResponse(
            label_schemas=[to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    def UpdateLabelSchema(self, request: pb.UpdateLabelSchemaRequest, context: Ctx) -> LabelSchema:
        changes = _changes(request)
        schema_id = request.label_schema.schema_id
        return to_proto(
            self.db.write(lambda uow: uow.label_schemas.update(schema_id, changes, now_ms(), field_prefix=PREFIX))
        )

    def DeleteLabelSchema(self, request: pb.DeleteLabelSchemaRequest, context: Ctx) -> pb.DeleteLabelSchemaResponse:
        _valid_schema_id("schema_id", request.schema_id)
        self.db.write(lambda uow: uow.label_schemas.delete(request.schema_id))
        return pb.DeleteLabelSchemaResponse()
