"""ExperimentService rejects bad writes: the status, the reason, the field, and nothing stored.

Every rule is checked through the real server; each test snapshots the tables before the call
and compares after it. Rejected searches are in ``test_experiments_bad_search.py``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from mlgenai.client import Client, MlgenaiError
from mlgenai.v1 import experiment_pb2, experiment_service_pb2 as pb
from store.uow import Database
from tests.helpers import expect_error, snapshot

TABLES = ("experiments", "experiment_tags", "request_ids")
INVALID = grpc.StatusCode.INVALID_ARGUMENT
UNKNOWN_ID = "987654"


@contextmanager
def nothing_stored(db: Database) -> Iterator[None]:
    before = snapshot(db, *TABLES)
    yield
    assert snapshot(db, *TABLES) == before, "a rejected call changed the database"


def invalid_field(call: Callable[[], Any], field: str) -> MlgenaiError:
    return expect_error(INVALID, "INVALID_FIELD", call, field=field)


def violation_fields(err: MlgenaiError) -> list[str]:
    return [v.field for v in err.violations]


def assert_no_leak(err: MlgenaiError) -> None:
    """Messages never leak SQL or driver internals (SPEC §1.7)."""
    text = err.details().lower()
    for word in ("select ", "insert ", "update ", "constraint", "sqlalchemy", "psycopg", "sqlite", "traceback"):
        assert word not in text, f"{word!r} leaked in {err.details()!r}"


# -- CreateExperiment ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["", " ", "   \t\n ", "x" * 257, "🙂" * 257, "a\x00b", "\x00"],
    ids=["empty", "space", "blank", "257-chars", "257-emoji", "nul-inside", "nul-only"],
)
def test_create_rejects_bad_name(client: Client, database: Database, name: str) -> None:
    with nothing_stored(database):
        invalid_field(lambda: client.create_experiment(name), "name")


@pytest.mark.parametrize(
    "tags",
    [{"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8_001}, {"k": "🙂" * 8_001}, {"a\x00b": "v"}, {"k": "a\x00b"}],
    ids=["empty-key", "251-char-key", "8001-char-value", "8001-emoji-value", "nul-in-key", "nul-in-value"],
)
def test_create_rejects_bad_tag(client: Client, database: Database, tags: dict[str, str]) -> None:
    with nothing_stored(database):
        err = expect_error(
            INVALID, "INVALID_FIELD", lambda: client.create_experiment("tagged", tags={"ok": "1", **tags})
        )
    fields = violation_fields(err)
    assert fields and all(f.startswith("tags") for f in fields), fields


def test_create_rejects_1001_tags(client: Client, database: Database) -> None:
    tags = {f"k{i}": "v" for i in range(1_001)}
    with nothing_stored(database):
        invalid_field(lambda: client.create_experiment("too-many", tags=tags), "tags")


@pytest.mark.parametrize("location", ["s3://" + "x" * 2_044, "s3://a\x00b"], ids=["2049-chars", "nul"])
def test_create_rejects_bad_artifact_location(client: Client, database: Database, location: str) -> None:
    with nothing_stored(database):
        invalid_field(lambda: client.create_experiment("loc", artifact_location=location), "artifact_location")


def test_create_reports_every_violation_at_once(client: Client, database: Database) -> None:
    with nothing_stored(database):
        err = invalid_field(lambda: client.create_experiment("", artifact_location="x" * 2_049), "name")
    assert "artifact_location" in violation_fields(err)


@pytest.mark.parametrize("delete_first", [False, True], ids=["active", "deleted"])
def test_create_rejects_taken_name(client: Client, database: Database, delete_first: bool) -> None:
    exp = client.create_experiment("dup", tags={"a": "1"})
    if delete_first:
        client.delete_experiment(exp["experiment_id"])
    with nothing_stored(database):
        err = expect_error(
            grpc.StatusCode.ALREADY_EXISTS,
            "EXPERIMENT_ALREADY_EXISTS",
            lambda: client.create_experiment("dup", tags={"b": "2"}),
        )
    assert err.domain == "mlgenai"
    assert_no_leak(err)
    # Names are case-sensitive: another case is another name.
    assert client.create_experiment("DUP")["name"] == "DUP"


@pytest.mark.parametrize("request_id", ["not-a-uuid", "1234", "x" * 36, "6ba7b810-9dad-11d1-80b4-00c04fd430c8-ff", " "])
def test_create_rejects_malformed_request_id(client: Client, database: Database, request_id: str) -> None:
    req = pb.CreateExperimentRequest(name="rid", request_id=request_id)
    with nothing_stored(database):
        invalid_field(lambda: client.experiments.CreateExperiment(req), "request_id")


# -- ids -----------------------------------------------------------------------------------


def _rename(client: Client, experiment_id: str, name: str = "renamed") -> Any:
    return client.rename_experiment(experiment_id, name)


ID_CALLS: dict[str, tuple[Callable[[Client, str], Any], str]] = {
    "get": (lambda c, i: c.get_experiment(i), "experiment_id"),
    "update": (_rename, "experiment.experiment_id"),
    "delete": (lambda c, i: c.delete_experiment(i), "experiment_id"),
    "undelete": (lambda c, i: c.undelete_experiment(i), "experiment_id"),
    "set_tag": (lambda c, i: c.set_experiment_tag(i, "k", "v"), "experiment_id"),
    "delete_tag": (lambda c, i: c.delete_experiment_tag(i, "k"), "experiment_id"),
}


@pytest.mark.parametrize("rpc", ID_CALLS)
def test_unknown_id_is_not_found(client: Client, database: Database, rpc: str) -> None:
    call, _field = ID_CALLS[rpc]
    client.create_experiment("exists")
    with nothing_stored(database):
        err = expect_error(grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: call(client, UNKNOWN_ID))
    assert err.metadata.get("experiment_id") == UNKNOWN_ID
    assert err.domain == "mlgenai"


@pytest.mark.parametrize("bad_id", ["abc", "-1", "1.5", " 1", "1 ", "0x1", "1e3", "9" * 20, ""])
@pytest.mark.parametrize("rpc", ID_CALLS)
def test_malformed_id_is_invalid(client: Client, database: Database, rpc: str, bad_id: str) -> None:
    call, field = ID_CALLS[rpc]
    client.create_experiment("exists")
    with nothing_stored(database):
        invalid_field(lambda: call(client, bad_id), field)


def test_get_by_name_requires_a_name(client: Client, database: Database) -> None:
    invalid_field(lambda: client.get_experiment_by_name(""), "name")


# -- UpdateExperiment ----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["", "  ", "x" * 257, "a\x00b"], ids=["empty", "blank", "257-chars", "nul"])
def test_rename_rejects_bad_name(client: Client, database: Database, name: str) -> None:
    eid = client.create_experiment("orig")["experiment_id"]
    with nothing_stored(database):
        invalid_field(lambda: client.rename_experiment(eid, name), "experiment.name")


@pytest.mark.parametrize("delete_holder", [False, True], ids=["active-holder", "deleted-holder"])
def test_rename_to_taken_name(client: Client, database: Database, delete_holder: bool) -> None:
    holder = client.create_experiment("holder")["experiment_id"]
    eid = client.create_experiment("mover")["experiment_id"]
    if delete_holder:
        client.delete_experiment(holder)
    with nothing_stored(database):
        err = expect_error(
            grpc.StatusCode.ALREADY_EXISTS,
            "EXPERIMENT_ALREADY_EXISTS",
            lambda: client.rename_experiment(eid, "holder"),
        )
    assert_no_leak(err)
    assert client.get_experiment(eid)["name"] == "mover"


def test_rename_deleted_experiment(client: Client, database: Database) -> None:
    eid = client.create_experiment("gone")["experiment_id"]
    client.delete_experiment(eid)
    with nothing_stored(database):
        err = expect_error(
            grpc.StatusCode.FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: client.rename_experiment(eid, "new")
        )
    assert err.metadata.get("experiment_id") == eid


@pytest.mark.parametrize(
    "paths",
    [["artifact_location"], ["tags"], ["bogus"], ["name", "tags"], ["experiment.name"], ["Name"], [""]],
    ids=["artifact_location", "tags", "unknown", "name+tags", "prefixed", "wrong-case", "empty-path"],
)
def test_update_mask_outside_mutable_set(client: Client, database: Database, paths: list[str]) -> None:
    eid = client.create_experiment("masked", tags={"a": "1"})["experiment_id"]
    exp = experiment_pb2.Experiment(
        experiment_id=eid, name="changed", artifact_location="s3://elsewhere", tags={"b": "2"}
    )
    req = pb.UpdateExperimentRequest(experiment=exp, update_mask=field_mask_pb2.FieldMask(paths=paths))
    with nothing_stored(database):
        invalid_field(lambda: client.experiments.UpdateExperiment(req), "update_mask")


# -- tags ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "value", "field"),
    [
        ("", "v", "key"),
        ("k" * 251, "v", "key"),
        ("a\x00b", "v", "key"),
        ("k", "v" * 8_001, "value"),
        ("k", "🙂" * 8_001, "value"),
        ("k", "a\x00b", "value"),
    ],
    ids=["empty-key", "251-char-key", "nul-key", "8001-char-value", "8001-emoji-value", "nul-value"],
)
def test_set_tag_rejects_bad_tag(client: Client, database: Database, key: str, value: str, field: str) -> None:
    eid = client.create_experiment("tags", tags={"k": "old"})["experiment_id"]
    with nothing_stored(database):
        invalid_field(lambda: client.set_experiment_tag(eid, key, value), field)


def test_delete_tag_requires_a_key(client: Client, database: Database) -> None:
    eid = client.create_experiment("tags", tags={"k": "v"})["experiment_id"]
    with nothing_stored(database):
        invalid_field(lambda: client.delete_experiment_tag(eid, ""), "key")


def test_set_tag_beyond_1000_tags(client: Client, database: Database) -> None:
    eid = client.create_experiment("full", tags={f"k{i:04d}": "v" for i in range(1_000)})["experiment_id"]
    with nothing_stored(database):
        err = expect_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_TAGS", lambda: client.set_experiment_tag(eid, "one-more", "v")
        )
    assert err.metadata.get("experiment_id") == eid
    # Overwriting an existing key is not a new tag; after removing one there is room again.
    client.set_experiment_tag(eid, "k0000", "changed")
    client.delete_experiment_tag(eid, "k0001")
    client.set_experiment_tag(eid, "one-more", "v")
    tags = client.get_experiment(eid)["tags"]
    assert len(tags) == 1_000 and tags["k0000"] == "changed" and "k0001" not in tags


@pytest.mark.parametrize("rpc", ["set", "delete"])
def test_tag_writes_into_deleted_experiment(client: Client, database: Database, rpc: str) -> None:
    eid = client.create_experiment("archived", tags={"k": "v"})["experiment_id"]
    client.delete_experiment(eid)
    call: Callable[[], Any] = (
        (lambda: client.set_experiment_tag(eid, "k", "new"))
        if rpc == "set"
        else (lambda: client.delete_experiment_tag(eid, "k"))
    )
    with nothing_stored(database):
        err = expect_error(grpc.StatusCode.FAILED_PRECONDITION, "EXPERIMENT_DELETED", call)
    assert err.metadata.get("experiment_id") == eid
    assert client.get_experiment(eid)["tags"] == {"k": "v"}
