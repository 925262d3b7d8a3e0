"""Label schemas through the real server (SPEC §8.1): create each input kind, get, list by name
in pages, update, delete, names under concurrency, and the repository's ``get_many``.

Rejected input is in ``test_label_schemas_bad_input.py``.
"""

from __future__ import annotations

import re
import threading
import time
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import Client, MlgenaiError
from mlgenai.v1 import label_schema_pb2 as lpb, labeling_service_pb2 as pb
from store.uow import Database
from tests.helpers import count_rows, expect_error

SCHEMA_ID = re.compile(r"ls-[0-9a-f]{32}")


@pytest.fixture
def exp_id(client: Client) -> str:
    return str(client.create_experiment("labels")["experiment_id"])


def add_session_using(db: Database, exp_id: str, schema_id: str) -> str:
    """A labeling session row asking for ``schema_id`` (sessions have their own RPCs elsewhere)."""
    session_id = "lbs-" + "a" * 32
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO labeling_sessions (labeling_session_id, experiment_id, name, instructions, "
                "assigned_users, raters_per_item, state, lease_seconds, next_position, create_time, update_time) "
                "VALUES (:id, :exp, 'review', '', '[]', 1, 'open', 600, 0, 1, 1)"
            ),
            {"id": session_id, "exp": int(exp_id)},
        )
        conn.execute(
            sa.text(
                "INSERT INTO labeling_session_schemas (labeling_session_id, position, schema_id) VALUES (:s, 0, :l)"
            ),
            {"s": session_id, "l": schema_id},
        )
    return session_id


# -- create / get ----------------------------------------------------------------------------


def test_create_returns_every_field(client: Client, exp_id: str) -> None:
    before = time.time()
    schema = client.create_label_schema(
        exp_id,
        "tone",
        type="expectation",
        categorical={"options": ["calm", "angry"], "multi_select": True},
        title="Tone",
        instruction="How does the answer sound?",
        enable_comment=True,
    )
    assert SCHEMA_ID.fullmatch(schema["schema_id"])
    assert schema["experiment_id"] == exp_id
    assert schema["name"] == "tone"
    assert schema["type"] == "EXPECTATION"
    assert schema["title"] == "Tone"
    assert schema["instruction"] == "How does the answer sound?"
    assert schema["enable_comment"] is True
    assert schema["categorical"] == {"options": ["calm", "angry"], "multi_select": True}
    assert schema["pass_fail"] is None and schema["numeric"] is None and schema["text"] is None
    assert before - 1 <= schema["create_time"].timestamp() <= time.time() + 1
    assert schema["update_time"] == schema["create_time"]
    assert client.get_label_schema(schema["schema_id"]) == schema


@pytest.mark.parametrize(
    ("kwargs", "field", "expected"),
    [
        ({"pass_fail": {}}, "pass_fail", {"positive_label": "Pass", "negative_label": "Fail"}),
        ({"pass_fail": {"positive_label": "Yes", "negative_label": "No"}}, "pass_fail",
         {"positive_label": "Yes", "negative_label": "No"}),
        ({"pass_fail": {"positive_label": "Good"}}, "pass_fail", {"positive_label": "Good", "negative_label": "Fail"}),
        ({"categorical": ["a", "b", "c"]}, "categorical", {"options": ["a", "b", "c"], "multi_select": False}),
        ({"numeric": {}}, "numeric", {"min_value": None, "max_value": None}),
        ({"numeric": {"min_value": 1, "max_value": 5}}, "numeric", {"min_value": 1, "max_value": 5}),
        ({"numeric": {"min_value": -0.5}}, "numeric", {"min_value": -0.5, "max_value": None}),
        ({"numeric": {"max_value": 0}}, "numeric", {"min_value": None, "max_value": 0}),
        ({"text": {}}, "text", {"max_length": 65_536}),
        ({"text": {"max_length": 280}}, "text", {"max_length": 280}),
    ],
)  # fmt: skip
def test_create_each_input_kind(
    client: Client, exp_id: str, kwargs: dict[str, Any], field: str, expected: dict[str, Any]
) -> None:
    schema = client.create_label_schema(exp_id, "q", **kwargs)
    assert schema["type"] == "FEEDBACK"
    assert schema[field] == expected
    assert client.get_label_schema(schema["schema_id"])[field] == expected


def test_names_are_unique_per_experiment_only(client: Client, database: Database, exp_id: str) -> None:
    other = str(client.create_experiment("other")["experiment_id"])
    a = client.create_label_schema(exp_id, "tone", pass_fail={})
    b = client.create_label_schema(other, "tone", text={})
    assert a["schema_id"] != b["schema_id"]
    err = expect_error(
        grpc.StatusCode.ALREADY_EXISTS,
        "LABEL_SCHEMA_ALREADY_EXISTS",
        lambda: client.create_label_schema(exp_id, "tone", numeric={}),
    )
    assert err.metadata == {"experiment_id": exp_id, "name": "tone"}
    assert count_rows(database, "label_schemas") == 2
    # Names are case-sensitive and kept as given.
    assert client.create_label_schema(exp_id, "Tone", pass_fail={})["name"] == "Tone"


def test_concurrent_creates_of_one_name(client: Client, database: Database, exp_id: str) -> None:
    results: list[str] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        try:
            client.create_label_schema(exp_id, "race", pass_fail={})
            results.append("ok")
        except MlgenaiError as err:
            results.append(err.reason)

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["LABEL_SCHEMA_ALREADY_EXISTS"] * 7 + ["ok"]
    assert count_rows(database, "label_schemas") == 1


def test_concurrent_renames_to_one_name(client: Client, database: Database, exp_id: str) -> None:
    ids = [client.create_label_schema(exp_id, f"s{i}", pass_fail={})["schema_id"] for i in range(6)]
    results: list[str] = []
    barrier = threading.Barrier(len(ids))

    def rename(schema_id: str) -> None:
        barrier.wait()
        try:
            client.update_label_schema(schema_id, name="winner")
            results.append("ok")
        except MlgenaiError as err:
            results.append(err.reason)

    threads = [threading.Thread(target=rename, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["LABEL_SCHEMA_ALREADY_EXISTS"] * 5 + ["ok"]
    assert [s["name"] for s in client.list_label_schemas(exp_id)].count("winner") == 1


# -- list ------------------------------------------------------------------------------------


def test_list_by_name_in_pages(client: Client, exp_id: str) -> None:
    other = str(client.create_experiment("other")["experiment_id"])
    client.create_label_schema(other, "elsewhere", pass_fail={})
    names = [f"q{i:02d}" for i in range(25)]
    for name in reversed(names):
        client.create_label_schema(exp_id, name, text={})
    assert [s["name"] for s in client.list_label_schemas(exp_id)] == names
    assert [s["name"] for s in client.list_label_schemas(exp_id, page_size=7)] == names
    first = client.labeling.ListLabelSchemas(pb.ListLabelSchemasRequest(experiment_id=exp_id, page_size=10))
    assert [s.name for s in first.label_schemas] == names[:10] and first.next_page_token
    second = client.labeling.ListLabelSchemas(
        pb.ListLabelSchemasRequest(experiment_id=exp_id, page_size=10, page_token=first.next_page_token)
    )
    assert [s.name for s in second.label_schemas] == names[10:20]
    # A schema inserted before the cursor does not shift later pages.
    client.create_label_schema(exp_id, "a-first", pass_fail={})
    third = client.labeling.ListLabelSchemas(
        pb.ListLabelSchemasRequest(experiment_id=exp_id, page_size=10, page_token=second.next_page_token)
    )
    assert [s.name for s in third.label_schemas] == names[20:] and not third.next_page_token


def test_list_page_size_default_and_clamp(client: Client, database: Database, exp_id: str) -> None:
    now, config = 1_700_000_000_000, '{"max_length":65536}'
    with database.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO label_schemas (schema_id, experiment_id, name, type, title, instruction, enable_comment, "
                "input_kind, input_config, create_time, update_time) VALUES (:id, :exp, :name, 'feedback', '', '', "
                ":f, 'text', :c, :t, :t)"
            ),
            [
                {"id": f"ls-{i:032x}", "exp": int(exp_id), "name": f"n{i:04d}", "f": False, "c": config, "t": now}
                for i in range(1_005)
            ],
        )
    default = client.labeling.ListLabelSchemas(pb.ListLabelSchemasRequest(experiment_id=exp_id))
    assert len(default.label_schemas) == 100 and default.next_page_token
    clamped = client.labeling.ListLabelSchemas(pb.ListLabelSchemasRequest(experiment_id=exp_id, page_size=5_000))
    assert len(clamped.label_schemas) == 1_000 and clamped.next_page_token
    assert len(client.list_label_schemas(exp_id)) == 1_005


def test_list_of_empty_and_deleted_experiment(client: Client, exp_id: str) -> None:
    assert client.list_label_schemas(exp_id) == []
    client.create_label_schema(exp_id, "q", pass_fail={})
    client.delete_experiment(exp_id)
    assert [s["name"] for s in client.list_label_schemas(exp_id)] == ["q"]


# -- update ----------------------------------------------------------------------------------


def test_update_text_fields(client: Client, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "tone", categorical=["calm", "angry"])
    time.sleep(0.01)
    updated = client.update_label_schema(
        schema["schema_id"], name="mood", title="Mood", instruction="Pick one", enable_comment=True
    )
    assert (updated["name"], updated["title"], updated["instruction"], updated["enable_comment"]) == (
        "mood", "Mood", "Pick one", True,
    )  # fmt: skip
    assert updated["categorical"] == schema["categorical"]
    assert updated["type"] == schema["type"]
    assert updated["create_time"] == schema["create_time"]
    assert updated["update_time"] > schema["update_time"]
    assert client.get_label_schema(schema["schema_id"]) == updated
    # The old name is free again.
    client.create_label_schema(exp_id, "tone", pass_fail={})


def test_update_to_the_same_values_keeps_update_time(client: Client, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "tone", categorical=["calm", "angry"], title="T")
    time.sleep(0.01)
    same = client.update_label_schema(schema["schema_id"], name="tone", title="T", options=["calm", "angry"])
    assert same == schema


def test_update_options(client: Client, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "tone", categorical={"options": ["calm"], "multi_select": True})
    updated = client.update_label_schema(schema["schema_id"], options=["serene", "calm", "angry"])
    assert updated["categorical"] == {"options": ["serene", "calm", "angry"], "multi_select": True}


def test_update_numeric_bounds(client: Client, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "score", numeric={"min_value": 1, "max_value": 5})
    sid = schema["schema_id"]
    assert client.update_label_schema(sid, max_value=10)["numeric"] == {"min_value": 1, "max_value": 10}
    # A bound in the mask but not set in the request is removed.
    assert client.update_label_schema(sid, min_value=None)["numeric"] == {"min_value": None, "max_value": 10}
    assert client.update_label_schema(sid, min_value=-2.5, max_value=None)["numeric"] == {
        "min_value": -2.5,
        "max_value": None,
    }
    assert client.get_label_schema(sid)["numeric"] == {"min_value": -2.5, "max_value": None}


def test_update_text_max_length(client: Client, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "note", text={"max_length": 10})
    assert client.update_label_schema(schema["schema_id"], max_length=500)["text"] == {"max_length": 500}
    assert client.update_label_schema(schema["schema_id"], max_length=0)["text"] == {"max_length": 65_536}


def test_update_ignores_output_only_paths(client: Client, exp_id: str) -> None:
    from google.protobuf import field_mask_pb2

    from mlgenai.v1 import label_schema_pb2 as lpb

    schema = client.create_label_schema(exp_id, "tone", pass_fail={})
    req = pb.UpdateLabelSchemaRequest(
        label_schema=lpb.LabelSchema(schema_id=schema["schema_id"], name="mood"),
        update_mask=field_mask_pb2.FieldMask(paths=["name", "schema_id", "create_time", "update_time"]),
    )
    out = client.labeling.UpdateLabelSchema(req)
    assert out.schema_id == schema["schema_id"] and out.name == "mood"


# -- delete ----------------------------------------------------------------------------------


def test_delete(client: Client, database: Database, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "tone", pass_fail={})
    client.delete_label_schema(schema["schema_id"])
    assert count_rows(database, "label_schemas") == 0
    expect_error(
        grpc.StatusCode.NOT_FOUND, "LABEL_SCHEMA_NOT_FOUND", lambda: client.get_label_schema(schema["schema_id"])
    )
    expect_error(
        grpc.StatusCode.NOT_FOUND, "LABEL_SCHEMA_NOT_FOUND", lambda: client.delete_label_schema(schema["schema_id"])
    )
    # The name can be used again.
    client.create_label_schema(exp_id, "tone", text={})


def test_delete_in_use_then_after_session_is_gone(client: Client, database: Database, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "tone", pass_fail={})
    session_id = add_session_using(database, exp_id, schema["schema_id"])
    err = expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        "LABEL_SCHEMA_IN_USE",
        lambda: client.delete_label_schema(schema["schema_id"]),
    )
    assert err.metadata == {"schema_id": schema["schema_id"], "labeling_session_id": session_id}
    assert count_rows(database, "label_schemas") == 1
    with database.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM labeling_sessions"))
    client.delete_label_schema(schema["schema_id"])
    assert count_rows(database, "label_schemas") == 0


def test_schemas_of_a_deleted_experiment_can_be_read_and_deleted(client: Client, exp_id: str) -> None:
    schema = client.create_label_schema(exp_id, "tone", pass_fail={})
    client.delete_experiment(exp_id)
    assert client.get_label_schema(schema["schema_id"])["name"] == "tone"
    client.delete_label_schema(schema["schema_id"])


# -- get_many (used by labeling sessions) ----------------------------------------------------


def test_get_many_in_the_order_given(client: Client, database: Database, exp_id: str) -> None:
    ids = [client.create_label_schema(exp_id, n, pass_fail={})["schema_id"] for n in ("a", "b", "c")]
    wanted = [ids[2], ids[0], ids[2], ids[1]]
    got = database.read(lambda uow: uow.label_schemas.get_many(wanted))
    assert [s.schema_id for s in got] == wanted
    assert [s.name for s in got] == ["c", "a", "c", "b"]
    assert got[0].config == {"positive_label": "Pass", "negative_label": "Fail"}
    assert got[0].experiment_id == exp_id and got[0].type == "feedback" and got[0].input_kind == "pass_fail"
    locked = database.write(lambda uow: uow.label_schemas.get_many(wanted, lock=True))
    assert locked == got
    assert database.read(lambda uow: uow.label_schemas.get_many([])) == []
    missing = ["ls-" + "f" * 32, "ls-" + "e" * 32]
    with pytest.raises(Exception) as info:
        database.read(lambda uow: uow.label_schemas.get_many([ids[0], *missing]))
    assert getattr(info.value, "reason", None) == "LABEL_SCHEMA_NOT_FOUND"
    assert info.value.metadata == {"schema_id": missing[0]}  # type: ignore[attr-defined]


def test_create_with_a_request_id_is_idempotent(client: Client, database: Database, exp_id: str) -> None:
    schema = lpb.LabelSchema(
        experiment_id=exp_id, name="tone", type=lpb.LABEL_SCHEMA_TYPE_FEEDBACK, text=lpb.TextInput()
    )
    request = pb.CreateLabelSchemaRequest(label_schema=schema, request_id="6f1c2e1e-1d3b-4b8a-9a55-0c2f3e4d5a6b")
    first = client.labeling.CreateLabelSchema(request)
    again = client.labeling.CreateLabelSchema(request)
    assert again == first
    assert count_rows(database, "label_schemas") == 1
    other = pb.CreateLabelSchemaRequest(label_schema=schema, request_id="6f1c2e1e-1d3b-4b8a-9a55-0c2f3e4d5a6b")
    other.label_schema.name = "style"
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED", lambda: client.labeling.CreateLabelSchema(other)
    )
    assert count_rows(database, "label_schemas") == 1
