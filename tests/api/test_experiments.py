"""ExperimentService through the real server: create, get, rename, delete/undelete, tags (SPEC §2).

Search, ordering and paging are in ``test_experiments_search.py``; rejected input in
``test_experiments_bad_input.py``.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2, timestamp_pb2

from mlgenai.client import Client
from mlgenai.v1 import common_pb2, experiment_pb2, experiment_service_pb2 as pb
from store.uow import Database
from tests.helpers import count_rows, expect_error, snapshot

TABLES = ("experiments", "experiment_tags", "request_ids")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
OLD_MS = 1_000_000  # an update_time far in the past, to see it bumped without sleeping


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def set_times(db: Database, experiment_id: str, *, create: int | None = None, update: int | None = None) -> None:
    with db.engine.begin() as conn:
        if create is not None:
            conn.execute(
                sa.text("UPDATE experiments SET create_time = :t WHERE experiment_id = :id"),
                {"t": create, "id": int(experiment_id)},
            )
        if update is not None:
            conn.execute(
                sa.text("UPDATE experiments SET update_time = :t WHERE experiment_id = :id"),
                {"t": update, "id": int(experiment_id)},
            )


def stored_row(db: Database, experiment_id: str) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(
            sa.text("SELECT * FROM experiments WHERE experiment_id = :id"), {"id": int(experiment_id)}
        ).one()


def stored_tags(db: Database, experiment_id: str) -> dict[str, str]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT key, value FROM experiment_tags WHERE experiment_id = :id"), {"id": int(experiment_id)}
        ).all()
    return {r.key: r.value for r in rows}


# -- create --------------------------------------------------------------------------------


def test_create_returns_every_field(client: Client, database: Database) -> None:
    before = now_ms()
    exp = client.create_experiment("agent-a", tags={"env": "prod", "team": "search"})
    after = now_ms()

    assert exp["experiment_id"].isdecimal() and exp["experiment_id"] != "0"
    assert exp["name"] == "agent-a"
    assert exp["lifecycle_stage"] == "ACTIVE"
    assert exp["artifact_location"] == f"mlflow-artifacts:/{exp['experiment_id']}"
    assert exp["tags"] == {"env": "prod", "team": "search"}
    assert exp["create_time"] == exp["update_time"]
    assert before <= ms(exp["create_time"]) <= after

    row = stored_row(database, exp["experiment_id"])
    assert (row.name, row.lifecycle_stage, row.create_time, row.update_time) == (
        "agent-a",
        "active",
        ms(exp["create_time"]),
        ms(exp["update_time"]),
    )
    assert stored_tags(database, exp["experiment_id"]) == {"env": "prod", "team": "search"}
    assert client.get_experiment(exp["experiment_id"]) == exp


def test_create_assigns_distinct_decimal_ids(client: Client, database: Database) -> None:
    ids = [client.create_experiment(f"exp-{i}")["experiment_id"] for i in range(5)]
    assert len(set(ids)) == 5
    assert all(i.isdecimal() and str(int(i)) == i and i != "0" for i in ids)
    assert count_rows(database, "experiments") == 6  # plus Default


def test_create_without_tags(client: Client, database: Database) -> None:
    exp = client.create_experiment("no-tags")
    assert exp["tags"] == {}
    assert count_rows(database, "experiment_tags") == 0


def test_create_keeps_given_artifact_location(client: Client) -> None:
    exp = client.create_experiment("with-location", artifact_location="s3://bucket/some/path")
    assert exp["artifact_location"] == "s3://bucket/some/path"
    assert client.get_experiment(exp["experiment_id"])["artifact_location"] == "s3://bucket/some/path"


def test_limits_at_the_boundary_are_accepted(client: Client, database: Database) -> None:
    name = "é" * 255 + "🙂"  # 256 characters, multi-byte
    location = "s3://" + "l" * 2043  # 2,048 characters
    key = "k" * 250
    value = "🙂" * 8_000
    exp = client.create_experiment(name, artifact_location=location, tags={key: value})
    got = client.get_experiment(exp["experiment_id"])
    assert got["name"] == name
    assert got["artifact_location"] == location
    assert got["tags"] == {key: value}
    assert stored_tags(database, exp["experiment_id"]) == {key: value}


def test_create_with_1000_tags(client: Client, database: Database) -> None:
    tags = {f"key-{i:04d}": f"value-{i}" for i in range(1_000)}
    exp = client.create_experiment("many-tags", tags=tags)
    assert exp["tags"] == tags
    assert client.get_experiment(exp["experiment_id"])["tags"] == tags
    assert count_rows(database, "experiment_tags") == 1_000


def test_unicode_names_and_tags_round_trip(client: Client) -> None:
    name = "实验 🧪 «agent» — naïve"
    tags = {"équipe": "recherche 🔎", "键": "值", "quote'key": 'double"value', "empty": ""}
    exp = client.create_experiment(name, tags=tags)
    assert exp["name"] == name and exp["tags"] == tags
    assert client.get_experiment_by_name(name)["tags"] == tags


# -- get -----------------------------------------------------------------------------------


def test_get_experiment_by_id_and_name(client: Client) -> None:
    exp = client.create_experiment("lookup", tags={"a": "1"})
    assert client.get_experiment(exp["experiment_id"]) == exp
    assert client.get_experiment_by_name("lookup") == exp


@pytest.mark.parametrize("other", ["myagent", "MYAGENT", "MyAgent ", " MyAgent", "MyAgen", "MyAgen%", "MyAgen_"])
def test_get_by_name_is_exact_and_case_sensitive(client: Client, other: str) -> None:
    exp = client.create_experiment("MyAgent")
    assert client.get_experiment_by_name("MyAgent")["experiment_id"] == exp["experiment_id"]
    err = expect_error(grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: client.get_experiment_by_name(other))
    assert err.domain == "mlgenai"


def test_deleted_experiments_stay_readable(client: Client) -> None:
    exp = client.create_experiment("to-delete", tags={"k": "v"})
    client.delete_experiment(exp["experiment_id"])
    by_id = client.get_experiment(exp["experiment_id"])
    by_name = client.get_experiment_by_name("to-delete")
    assert by_id == by_name
    assert by_id["lifecycle_stage"] == "DELETED"
    assert by_id["tags"] == {"k": "v"}


# -- rename --------------------------------------------------------------------------------


def test_rename(client: Client, database: Database) -> None:
    exp = client.create_experiment("old-name", tags={"k": "v"})
    set_times(database, exp["experiment_id"], update=OLD_MS)
    before = now_ms()
    renamed = client.rename_experiment(exp["experiment_id"], "new-name")
    after = now_ms()

    assert renamed["name"] == "new-name"
    assert renamed["experiment_id"] == exp["experiment_id"]
    assert renamed["tags"] == {"k": "v"}
    assert renamed["create_time"] == exp["create_time"]
    assert renamed["artifact_location"] == exp["artifact_location"]
    assert before <= ms(renamed["update_time"]) <= after
    assert client.get_experiment(exp["experiment_id"]) == renamed
    assert client.get_experiment_by_name("new-name") == renamed
    expect_error(grpc.StatusCode.NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: client.get_experiment_by_name("old-name"))
    # The old name is free again.
    assert client.create_experiment("old-name")["experiment_id"] != exp["experiment_id"]


def test_rename_to_own_name_is_a_no_op(client: Client, database: Database) -> None:
    exp = client.create_experiment("same", tags={"k": "v"})
    set_times(database, exp["experiment_id"], update=OLD_MS)
    before = snapshot(database, *TABLES)
    result = client.rename_experiment(exp["experiment_id"], "same")
    assert result["name"] == "same"
    assert result == client.get_experiment(exp["experiment_id"])
    assert snapshot(database, *TABLES) == before


def _update(client: Client, experiment: experiment_pb2.Experiment, paths: list[str]) -> experiment_pb2.Experiment:
    req = pb.UpdateExperimentRequest(experiment=experiment, update_mask=field_mask_pb2.FieldMask(paths=paths))
    return client.experiments.UpdateExperiment(req)


def test_empty_mask_updates_the_fields_that_are_set(client: Client) -> None:
    exp = client.create_experiment("empty-mask")
    result = _update(client, experiment_pb2.Experiment(experiment_id=exp["experiment_id"], name="renamed"), [])
    assert result.name == "renamed"
    assert client.get_experiment(exp["experiment_id"])["name"] == "renamed"


def test_empty_mask_with_nothing_set_changes_nothing(client: Client, database: Database) -> None:
    exp = client.create_experiment("untouched")
    set_times(database, exp["experiment_id"], update=OLD_MS)
    before = snapshot(database, *TABLES)
    result = _update(client, experiment_pb2.Experiment(experiment_id=exp["experiment_id"]), [])
    assert result.name == "untouched"
    assert snapshot(database, *TABLES) == before


def test_output_only_mask_paths_are_ignored(client: Client, database: Database) -> None:
    exp = client.create_experiment("out-only")
    eid = exp["experiment_id"]
    bogus = experiment_pb2.Experiment(
        experiment_id=eid,
        name="renamed",
        lifecycle_stage=common_pb2.LIFECYCLE_STAGE_DELETED,
        create_time=timestamp_pb2.Timestamp(seconds=5),
        update_time=timestamp_pb2.Timestamp(seconds=6),
    )
    paths = ["name", "experiment_id", "lifecycle_stage", "create_time", "update_time"]
    result = _update(client, bogus, paths)
    assert result.name == "renamed"
    assert result.experiment_id == eid
    assert result.lifecycle_stage == common_pb2.LIFECYCLE_STAGE_ACTIVE
    assert result.create_time.ToMilliseconds() == ms(exp["create_time"])
    assert result.update_time.ToMilliseconds() >= ms(exp["update_time"])
    row = stored_row(database, eid)
    assert (row.name, row.lifecycle_stage, row.create_time) == ("renamed", "active", ms(exp["create_time"]))

    # A mask of output-only paths alone changes nothing.
    before = snapshot(database, *TABLES)
    result = _update(client, bogus, ["lifecycle_stage", "create_time"])
    assert result.lifecycle_stage == common_pb2.LIFECYCLE_STAGE_ACTIVE
    assert snapshot(database, *TABLES) == before


# -- delete / undelete ---------------------------------------------------------------------


def test_delete_is_soft_and_idempotent(client: Client, database: Database) -> None:
    exp = client.create_experiment("doomed", tags={"k": "v"})
    eid = exp["experiment_id"]
    set_times(database, eid, update=OLD_MS)
    before = now_ms()
    deleted = client.delete_experiment(eid)
    after = now_ms()

    assert deleted["lifecycle_stage"] == "DELETED"
    assert (deleted["name"], deleted["tags"], deleted["create_time"]) == ("doomed", {"k": "v"}, exp["create_time"])
    assert before <= ms(deleted["update_time"]) <= after
    row = stored_row(database, eid)
    assert row.lifecycle_stage == "deleted"
    assert stored_tags(database, eid) == {"k": "v"}
    assert count_rows(database, "experiments") == 2

    # Deleting again succeeds and returns it unchanged.
    state = snapshot(database, *TABLES)
    assert client.delete_experiment(eid) == deleted
    assert snapshot(database, *TABLES) == state
    assert client.get_experiment(eid) == deleted


def test_undelete_restores_and_is_idempotent(client: Client, database: Database) -> None:
    exp = client.create_experiment("phoenix", tags={"k": "v"})
    eid = exp["experiment_id"]

    # Undeleting an active experiment returns it unchanged.
    state = snapshot(database, *TABLES)
    assert client.undelete_experiment(eid) == exp
    assert snapshot(database, *TABLES) == state

    client.delete_experiment(eid)
    set_times(database, eid, update=OLD_MS)
    before = now_ms()
    restored = client.undelete_experiment(eid)
    after = now_ms()
    assert restored["lifecycle_stage"] == "ACTIVE"
    assert (restored["name"], restored["tags"], restored["create_time"]) == ("phoenix", {"k": "v"}, exp["create_time"])
    assert before <= ms(restored["update_time"]) <= after
    assert stored_row(database, eid).lifecycle_stage == "active"
    # Writable again.
    client.set_experiment_tag(eid, "after", "undelete")
    assert client.rename_experiment(eid, "phoenix-2")["tags"] == {"k": "v", "after": "undelete"}


def test_deleted_experiment_keeps_its_name(client: Client, database: Database) -> None:
    exp = client.create_experiment("taken")
    client.delete_experiment(exp["experiment_id"])
    expect_error(grpc.StatusCode.ALREADY_EXISTS, "EXPERIMENT_ALREADY_EXISTS", lambda: client.create_experiment("taken"))
    assert count_rows(database, "experiments", "name = 'taken'") == 1


# -- tags ----------------------------------------------------------------------------------


def test_set_tag_inserts_and_overwrites(client: Client, database: Database) -> None:
    eid = client.create_experiment("tagged", tags={"a": "1"})["experiment_id"]
    set_times(database, eid, update=OLD_MS)
    before = now_ms()
    client.set_experiment_tag(eid, "b", "2")
    after = now_ms()
    got = client.get_experiment(eid)
    assert got["tags"] == {"a": "1", "b": "2"}
    assert before <= ms(got["update_time"]) <= after

    set_times(database, eid, update=OLD_MS)
    client.set_experiment_tag(eid, "a", "changed")
    got = client.get_experiment(eid)
    assert got["tags"] == {"a": "changed", "b": "2"}
    assert ms(got["update_time"]) > OLD_MS
    assert stored_tags(database, eid) == {"a": "changed", "b": "2"}

    # Same value again: still one row per key.
    client.set_experiment_tag(eid, "a", "changed")
    assert count_rows(database, "experiment_tags") == 2


def test_tag_keys_are_case_sensitive_and_values_may_be_empty(client: Client, database: Database) -> None:
    eid = client.create_experiment("case")["experiment_id"]
    client.set_experiment_tag(eid, "env", "prod")
    client.set_experiment_tag(eid, "Env", "dev")
    client.set_experiment_tag(eid, "blank", "")
    assert client.get_experiment(eid)["tags"] == {"env": "prod", "Env": "dev", "blank": ""}
    assert stored_tags(database, eid) == {"env": "prod", "Env": "dev", "blank": ""}


def test_long_and_unicode_tag_values_are_returned_whole(client: Client) -> None:
    eid = client.create_experiment("long-values")["experiment_id"]
    ascii_value = "".join(chr(ord("a") + i % 26) for i in range(8_000))
    unicode_value = "日本語🙂" * 2_000  # 8,000 characters
    client.set_experiment_tag(eid, "ascii", ascii_value)
    client.set_experiment_tag(eid, "ключ 🔑", unicode_value)
    expected = {"ascii": ascii_value, "ключ 🔑": unicode_value}
    assert client.get_experiment(eid)["tags"] == expected
    assert client.get_experiment_by_name("long-values")["tags"] == expected
    [found] = client.search_experiments("name = 'long-values'")
    assert found["tags"] == expected


def test_delete_tag(client: Client, database: Database) -> None:
    eid = client.create_experiment("untag", tags={"a": "1", "b": "2"})["experiment_id"]
    set_times(database, eid, update=OLD_MS)
    before = now_ms()
    client.delete_experiment_tag(eid, "a")
    after = now_ms()
    got = client.get_experiment(eid)
    assert got["tags"] == {"b": "2"}
    assert before <= ms(got["update_time"]) <= after
    assert stored_tags(database, eid) == {"b": "2"}

    # Removing a tag that is not there succeeds and removes nothing else.
    client.delete_experiment_tag(eid, "a")
    client.delete_experiment_tag(eid, "never-set")
    client.delete_experiment_tag(eid, "B")  # keys are case-sensitive
    assert client.get_experiment(eid)["tags"] == {"b": "2"}
    assert stored_tags(database, eid) == {"b": "2"}


def test_tags_of_one_experiment_do_not_leak_into_another(client: Client) -> None:
    a = client.create_experiment("first", tags={"shared": "a"})["experiment_id"]
    b = client.create_experiment("second", tags={"shared": "b"})["experiment_id"]
    client.delete_experiment_tag(a, "shared")
    client.set_experiment_tag(b, "only-b", "x")
    assert client.get_experiment(a)["tags"] == {}
    assert client.get_experiment(b)["tags"] == {"shared": "b", "only-b": "x"}


# -- the Default experiment ----------------------------------------------------------------


def test_default_experiment_exists(client: Client, database: Database) -> None:
    default = client.get_experiment("0")
    assert default["experiment_id"] == "0"
    assert default["name"] == "Default"
    assert default["lifecycle_stage"] == "ACTIVE"
    assert default["artifact_location"] == "mlflow-artifacts:/0"
    assert default["create_time"] is not None and default["update_time"] is not None
    assert client.get_experiment_by_name("Default") == default
    assert [e["experiment_id"] for e in client.search_experiments()] == ["0"]
    expect_error(
        grpc.StatusCode.ALREADY_EXISTS, "EXPERIMENT_ALREADY_EXISTS", lambda: client.create_experiment("Default")
    )
    assert count_rows(database, "experiments") == 1


def test_default_experiment_is_usable(client: Client) -> None:
    client.set_experiment_tag("0", "team", "platform")
    assert client.get_experiment("0")["tags"] == {"team": "platform"}
    [found] = client.search_experiments("tags.team = 'platform'")
    assert found["experiment_id"] == "0"
    client.delete_experiment_tag("0", "team")
    assert client.get_experiment("0")["tags"] == {}
    other = client.create_experiment("other")
    assert other["experiment_id"] != "0"
    assert {e["experiment_id"] for e in client.search_experiments()} == {"0", other["experiment_id"]}
