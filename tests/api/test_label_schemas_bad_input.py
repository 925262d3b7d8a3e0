"""Rejected label schema input (SPEC §8.1): the code, the reason, the field, and nothing stored."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from mlgenai.client import Client, MlgenaiError
from mlgenai.v1 import label_schema_pb2 as lpb, labeling_service_pb2 as pb
from store.uow import Database
from tests.api.test_label_schemas import add_session_using
from tests.helpers import expect_nothing_written

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
FP = grpc.StatusCode.FAILED_PRECONDITION
TABLES = ("label_schemas", "labeling_sessions", "labeling_session_schemas", "experiments")
FEEDBACK = lpb.LABEL_SCHEMA_TYPE_FEEDBACK
MALFORMED_IDS = ["", "ls-" + "0" * 31, "ls-" + "0" * 33, "ls-" + "A" * 32, "LS-" + "0" * 32, "0" * 32,
                 "lbs-" + "0" * 32, "ls-" + "g" * 32, " ls-" + "0" * 32]  # fmt: skip
MISSING_ID = "ls-" + "0" * 32


@pytest.fixture
def exp_id(client: Client) -> str:
    return str(client.create_experiment("labels")["experiment_id"])


def rejected(
    database: Database, code: grpc.StatusCode, reason: str, call: Callable[[], Any], field: str | None = None
) -> Any:
    return expect_nothing_written(database, TABLES, code, reason, call, field)


# -- CreateLabelSchema -----------------------------------------------------------------------


def create(client: Client, schema: lpb.LabelSchema) -> Callable[[], Any]:
    return lambda: client.labeling.CreateLabelSchema(pb.CreateLabelSchemaRequest(label_schema=schema))


def valid(exp_id: str, **fields: Any) -> lpb.LabelSchema:
    base: dict[str, Any] = {"experiment_id": exp_id, "name": "q", "type": FEEDBACK}
    if not {"pass_fail", "categorical", "numeric", "text"} & set(fields):
        base["pass_fail"] = lpb.PassFailInput()
    return lpb.LabelSchema(**(base | fields))


CAT = lpb.CategoricalInput
NUM = lpb.NumericInput
PF = lpb.PassFailInput


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"experiment_id": ""}, "label_schema.experiment_id"),
        ({"experiment_id": "abc"}, "label_schema.experiment_id"),
        ({"experiment_id": "9" * 20}, "label_schema.experiment_id"),
        ({"name": ""}, "label_schema.name"),
        ({"name": "n" * 251}, "label_schema.name"),
        ({"name": "   "}, "label_schema.name"),
        ({"name": "a\x00b"}, "label_schema.name"),
        ({"name": "line\nbreak"}, "label_schema.name"),
        ({"name": "tab\there"}, "label_schema.name"),
        ({"type": lpb.LABEL_SCHEMA_TYPE_UNSPECIFIED}, "label_schema.type"),
        ({"type": 7}, "label_schema.type"),
        ({"title": "t" * 251}, "label_schema.title"),
        ({"title": "a\x00"}, "label_schema.title"),
        ({"instruction": "i" * 4_001}, "label_schema.instruction"),
        ({"instruction": "a\x00"}, "label_schema.instruction"),
        ({"pass_fail": PF(positive_label="p" * 65)}, "label_schema.pass_fail.positive_label"),
        ({"pass_fail": PF(negative_label="n" * 65)}, "label_schema.pass_fail.negative_label"),
        ({"pass_fail": PF(positive_label="Same", negative_label="Same")}, "label_schema.pass_fail.negative_label"),
        ({"pass_fail": PF(positive_label="Fail")}, "label_schema.pass_fail.negative_label"),
        ({"pass_fail": PF(positive_label="  ")}, "label_schema.pass_fail.positive_label"),
        ({"categorical": CAT()}, "label_schema.categorical.options"),
        ({"categorical": CAT(multi_select=True)}, "label_schema.categorical.options"),
        ({"categorical": CAT(options=[f"o{i}" for i in range(51)])}, "label_schema.categorical.options"),
        ({"categorical": CAT(options=["a", "b", "a"])}, "label_schema.categorical.options[2]"),
        ({"categorical": CAT(options=["a", ""])}, "label_schema.categorical.options[1]"),
        ({"categorical": CAT(options=["o" * 65])}, "label_schema.categorical.options[0]"),
        ({"categorical": CAT(options=["a\x00"])}, "label_schema.categorical.options[0]"),
        ({"numeric": NUM(min_value=math.nan)}, "label_schema.numeric.min_value"),
        ({"numeric": NUM(max_value=math.inf)}, "label_schema.numeric.max_value"),
        ({"numeric": NUM(min_value=-math.inf)}, "label_schema.numeric.min_value"),
        ({"numeric": NUM(min_value=5, max_value=5)}, "label_schema.numeric.max_value"),
        ({"numeric": NUM(min_value=5, max_value=1)}, "label_schema.numeric.max_value"),
        ({"text": lpb.TextInput(max_length=-1)}, "label_schema.text.max_length"),
        ({"text": lpb.TextInput(max_length=65_537)}, "label_schema.text.max_length"),
    ],
)
def test_create_invalid_fields(
    client: Client, database: Database, exp_id: str, fields: dict[str, Any], field: str
) -> None:
    rejected(database, INVALID, "INVALID_FIELD", create(client, valid(exp_id, **fields)), field)


def test_create_without_input(client: Client, database: Database, exp_id: str) -> None:
    schema = lpb.LabelSchema(experiment_id=exp_id, name="q", type=FEEDBACK)
    rejected(database, INVALID, "INVALID_FIELD", create(client, schema), "label_schema.input")
    rejected(
        database, INVALID, "INVALID_FIELD", lambda: client.labeling.CreateLabelSchema(pb.CreateLabelSchemaRequest())
    )


def test_create_reports_every_bad_field(client: Client, database: Database, exp_id: str) -> None:
    schema = lpb.LabelSchema(experiment_id="x", name="", categorical=CAT(options=["a", "a"]))
    err = rejected(database, INVALID, "INVALID_FIELD", create(client, schema))
    assert sorted(v.field for v in err.violations) == [
        "label_schema.categorical.options[1]",
        "label_schema.experiment_id",
        "label_schema.name",
        "label_schema.type",
    ]


def test_create_in_unknown_or_deleted_experiment(client: Client, database: Database, exp_id: str) -> None:
    err = rejected(database, NF, "EXPERIMENT_NOT_FOUND", create(client, valid("424242")))
    assert err.metadata["experiment_id"] == "424242"
    client.delete_experiment(exp_id)
    rejected(database, FP, "EXPERIMENT_DELETED", create(client, valid(exp_id)))


def test_create_duplicate_name(client: Client, database: Database, exp_id: str) -> None:
    client.create_label_schema(exp_id, "q", text={})
    rejected(database, grpc.StatusCode.ALREADY_EXISTS, "LABEL_SCHEMA_ALREADY_EXISTS", create(client, valid(exp_id)))


def test_client_helper_checks_the_input_locally(client: Client, exp_id: str) -> None:
    with pytest.raises(ValueError, match="exactly one"):
        client.create_label_schema(exp_id, "q")
    with pytest.raises(ValueError, match="exactly one"):
        client.create_label_schema(exp_id, "q", pass_fail={}, text={})
    with pytest.raises(ValueError, match="type"):
        client.create_label_schema(exp_id, "q", type="opinion", pass_fail={})
    with pytest.raises(TypeError):
        client.update_label_schema(MISSING_ID, multi_select=True)


# -- ids: Get, Delete, Update ----------------------------------------------------------------


@pytest.mark.parametrize("bad", MALFORMED_IDS)
def test_malformed_schema_ids(client: Client, database: Database, bad: str) -> None:
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.get_label_schema(bad), "schema_id")
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.delete_label_schema(bad), "schema_id")
    rejected(
        database, INVALID, "INVALID_FIELD", lambda: client.update_label_schema(bad, name="x"), "label_schema.schema_id"
    )


def test_unknown_schema(client: Client, database: Database) -> None:
    for call in (
        lambda: client.get_label_schema(MISSING_ID),
        lambda: client.delete_label_schema(MISSING_ID),
        lambda: client.update_label_schema(MISSING_ID, name="x"),
    ):
        err = rejected(database, NF, "LABEL_SCHEMA_NOT_FOUND", call)
        assert err.metadata == {"schema_id": MISSING_ID}


def test_delete_in_use(client: Client, database: Database, exp_id: str) -> None:
    schema_id = client.create_label_schema(exp_id, "q", pass_fail={})["schema_id"]
    add_session_using(database, exp_id, schema_id)
    rejected(database, FP, "LABEL_SCHEMA_IN_USE", lambda: client.delete_label_schema(schema_id))


# -- ListLabelSchemas ------------------------------------------------------------------------


def list_call(client: Client, **fields: Any) -> Callable[[], Any]:
    return lambda: client.labeling.ListLabelSchemas(pb.ListLabelSchemasRequest(**fields))


@pytest.mark.parametrize("bad", ["", "abc", "-1", "9" * 20, "1.0"])
def test_list_bad_experiment_id(client: Client, database: Database, bad: str) -> None:
    rejected(database, INVALID, "INVALID_FIELD", list_call(client, experiment_id=bad), "experiment_id")


def test_list_unknown_experiment(client: Client, database: Database) -> None:
    rejected(database, NF, "EXPERIMENT_NOT_FOUND", list_call(client, experiment_id="424242"))


def test_list_negative_page_size(client: Client, database: Database, exp_id: str) -> None:
    rejected(database, INVALID, "INVALID_FIELD", list_call(client, experiment_id=exp_id, page_size=-1), "page_size")


def test_list_bad_page_tokens(client: Client, database: Database, exp_id: str) -> None:
    other = str(client.create_experiment("other")["experiment_id"])
    for name in ("a", "b", "c"):
        client.create_label_schema(exp_id, name, pass_fail={})
    token = client.labeling.ListLabelSchemas(pb.ListLabelSchemasRequest(experiment_id=exp_id, page_size=1))
    assert token.next_page_token
    for bad in ("garbage", token.next_page_token[:-2], token.next_page_token + "A"):
        call = list_call(client, experiment_id=exp_id, page_token=bad)
        rejected(database, INVALID, "INVALID_PAGE_TOKEN", call, "page_token")
    # A token of one experiment is not valid for another.
    call = list_call(client, experiment_id=other, page_token=token.next_page_token)
    rejected(database, INVALID, "INVALID_PAGE_TOKEN", call, "page_token")


# -- UpdateLabelSchema -----------------------------------------------------------------------


def update(client: Client, schema: lpb.LabelSchema, *paths: str) -> Callable[[], Any]:
    req = pb.UpdateLabelSchemaRequest(label_schema=schema, update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
    return lambda: client.labeling.UpdateLabelSchema(req)


@pytest.fixture
def schemas(client: Client, exp_id: str) -> dict[str, str]:
    return {
        "pass_fail": client.create_label_schema(exp_id, "pf", pass_fail={})["schema_id"],
        "categorical": client.create_label_schema(exp_id, "cat", categorical=["a", "b"])["schema_id"],
        "numeric": client.create_label_schema(exp_id, "num", numeric={"min_value": 1, "max_value": 5})["schema_id"],
        "text": client.create_label_schema(exp_id, "txt", text={"max_length": 10})["schema_id"],
    }


def test_update_empty_mask(client: Client, database: Database, schemas: dict[str, str]) -> None:
    schema = lpb.LabelSchema(schema_id=schemas["text"], name="new")
    rejected(database, INVALID, "INVALID_FIELD", update(client, schema), "update_mask")


@pytest.mark.parametrize(
    "path",
    ["type", "experiment_id", "pass_fail", "categorical", "numeric", "text", "categorical.multi_select"],
)
def test_update_immutable_paths(client: Client, database: Database, schemas: dict[str, str], path: str) -> None:
    schema = lpb.LabelSchema(
        schema_id=schemas["categorical"],
        type=lpb.LABEL_SCHEMA_TYPE_EXPECTATION,
        experiment_id="999",
        categorical=CAT(options=["a", "b"], multi_select=True),
    )
    rejected(database, INVALID, "IMMUTABLE_FIELD", update(client, schema, "name", path), "update_mask")


@pytest.mark.parametrize(
    ("kind", "schema", "path"),
    [
        ("pass_fail", lpb.LabelSchema(text=lpb.TextInput(max_length=5)), "text.max_length"),
        ("categorical", lpb.LabelSchema(numeric=NUM(min_value=0)), "numeric.min_value"),
        ("numeric", lpb.LabelSchema(categorical=CAT(options=["x"])), "categorical.options"),
        ("text", lpb.LabelSchema(numeric=NUM(max_value=3)), "numeric.max_value"),
    ],
)
def test_update_settings_of_another_input_kind(
    client: Client, database: Database, schemas: dict[str, str], kind: str, schema: lpb.LabelSchema, path: str
) -> None:
    schema.schema_id = schemas[kind]
    rejected(database, INVALID, "IMMUTABLE_FIELD", update(client, schema, path), "update_mask")


def test_update_two_input_kinds(client: Client, database: Database, schemas: dict[str, str]) -> None:
    schema = lpb.LabelSchema(schema_id=schemas["text"], text=lpb.TextInput(max_length=5))
    call = update(client, schema, "text.max_length", "numeric.min_value")
    rejected(database, INVALID, "IMMUTABLE_FIELD", call, "update_mask")


@pytest.mark.parametrize(
    "path",
    ["nme", "pass_fail.positive_label", "pass_fail.negative_label", "categorical.option", "text.max", "name.x", ""],
)
def test_update_unknown_paths(client: Client, database: Database, schemas: dict[str, str], path: str) -> None:
    schema = lpb.LabelSchema(schema_id=schemas["pass_fail"], name="x", pass_fail=PF(positive_label="Yes"))
    rejected(database, INVALID, "INVALID_FIELD", update(client, schema, path), "update_mask")


@pytest.mark.parametrize(
    ("kind", "schema", "path", "field"),
    [
        ("text", lpb.LabelSchema(name=""), "name", "label_schema.name"),
        ("text", lpb.LabelSchema(name="n" * 251), "name", "label_schema.name"),
        ("text", lpb.LabelSchema(name="a\nb"), "name", "label_schema.name"),
        ("text", lpb.LabelSchema(title="t" * 251), "title", "label_schema.title"),
        ("text", lpb.LabelSchema(instruction="i" * 4_001), "instruction", "label_schema.instruction"),
        ("text", lpb.LabelSchema(text=lpb.TextInput(max_length=-5)), "text.max_length", "label_schema.text.max_length"),
        ("text", lpb.LabelSchema(text=lpb.TextInput(max_length=70_000)), "text.max_length",
         "label_schema.text.max_length"),
        ("categorical", lpb.LabelSchema(), "categorical.options", "label_schema.categorical.options"),
        ("categorical", lpb.LabelSchema(categorical=CAT(options=["a", "a"])), "categorical.options",
         "label_schema.categorical.options[1]"),
        ("categorical", lpb.LabelSchema(categorical=CAT(options=[str(i) for i in range(51)])), "categorical.options",
         "label_schema.categorical.options"),
        ("numeric", lpb.LabelSchema(numeric=NUM(min_value=math.nan)), "numeric.min_value",
         "label_schema.numeric.min_value"),
        ("numeric", lpb.LabelSchema(numeric=NUM(max_value=-math.inf)), "numeric.max_value",
         "label_schema.numeric.max_value"),
        # Checked against the stored bounds (1..5).
        ("numeric", lpb.LabelSchema(numeric=NUM(min_value=5)), "numeric.min_value", "label_schema.numeric.max_value"),
        ("numeric", lpb.LabelSchema(numeric=NUM(max_value=0)), "numeric.max_value", "label_schema.numeric.max_value"),
    ],
)  # fmt: skip
def test_update_invalid_values(
    client: Client, database: Database, schemas: dict[str, str], kind: str, schema: lpb.LabelSchema, path: str,
    field: str,
) -> None:  # fmt: skip
    schema.schema_id = schemas[kind]
    rejected(database, INVALID, "INVALID_FIELD", update(client, schema, path), field)


def test_update_to_a_taken_name(client: Client, database: Database, schemas: dict[str, str]) -> None:
    err = rejected(
        database,
        grpc.StatusCode.ALREADY_EXISTS,
        "LABEL_SCHEMA_ALREADY_EXISTS",
        lambda: client.update_label_schema(schemas["text"], name="pf", title="changed"),
    )
    assert err.metadata["name"] == "pf"


def test_update_in_deleted_experiment(client: Client, database: Database, exp_id: str, schemas: dict[str, str]) -> None:
    client.delete_experiment(exp_id)
    rejected(database, FP, "EXPERIMENT_DELETED", lambda: client.update_label_schema(schemas["text"], title="t"))


def test_update_bad_input_before_unknown_schema(client: Client, database: Database) -> None:
    """Request checks come first: a bad request about a missing schema is INVALID_ARGUMENT."""
    schema = lpb.LabelSchema(schema_id=MISSING_ID, name="")
    rejected(database, INVALID, "INVALID_FIELD", update(client, schema, "name"), "label_schema.name")
    rejected(database, INVALID, "IMMUTABLE_FIELD", update(client, schema, "type"), "update_mask")


def test_nothing_changed_by_rejections(client: Client, database: Database, schemas: dict[str, str]) -> None:
    with database.engine.connect() as conn:
        before = conn.execute(sa.text("SELECT schema_id, name, input_config, update_time FROM label_schemas")).all()
    for call in (
        update(client, lpb.LabelSchema(schema_id=schemas["numeric"], numeric=NUM(min_value=9)), "numeric.min_value"),
        update(client, lpb.LabelSchema(schema_id=schemas["numeric"], name="n2"), "name", "type"),
    ):
        with pytest.raises(MlgenaiError):
            call()
    with database.engine.connect() as conn:
        after = conn.execute(sa.text("SELECT schema_id, name, input_config, update_time FROM label_schemas")).all()
    assert sorted(after) == sorted(before)
