"""Datasets (SPEC §5.1, §5.6): create, get, search, tags, experiment associations, delete."""

from __future__ import annotations

import re
import time

import grpc
import pytest

from mlgenai.client import Client
from store.uow import Database
from tests.api.dataset_support import DATASET_TABLES, SEED_RECORD
from tests.helpers import count_rows, expect_error

NOT_FOUND = grpc.StatusCode.NOT_FOUND


def test_create_and_get(client: Client) -> None:
    e1, e2 = (client.create_experiment(n)["experiment_id"] for n in ("ds-e1", "ds-e2"))
    ds = client.create_dataset("golden", experiment_ids=[e2, e1, e1], tags={"team": "qa", "mlflow.user": "ann"})
    assert re.fullmatch(r"d-[0-9a-f]{32}", ds["dataset_id"])
    assert ds["name"] == "golden" and ds["experiment_ids"] == sorted([e1, e2], key=int)
    assert ds["tags"] == {"team": "qa", "mlflow.user": "ann"}
    assert (ds["version"], ds["num_records"], ds["created_by"]) == (0, 0, "ann")
    assert ds["create_time"] == ds["update_time"] is not None and len(ds["digest"]) == 64
    assert client.get_dataset(ds["dataset_id"]) == ds
    assert client.create_dataset("golden")["dataset_id"] != ds["dataset_id"]  # names are not unique


def test_experiment_associations_are_validated_and_always_returned(client: Client) -> None:
    e1, e2, e3 = (client.create_experiment(f"assoc-{i}")["experiment_id"] for i in range(3))
    ds = client.create_dataset("assoc", experiment_ids=[e1])["dataset_id"]
    assert client.add_dataset_to_experiments(ds, [e2, e3, e2])["experiment_ids"] == [e1, e2, e3]
    assert client.add_dataset_to_experiments(ds, [e2])["experiment_ids"] == [e1, e2, e3]  # idempotent
    assert client.remove_dataset_from_experiments(ds, [e1, "424242"])["experiment_ids"] == [e2, e3]
    assert client.remove_dataset_from_experiments(ds, [e1])["experiment_ids"] == [e2, e3]
    assert next(iter(client.search_datasets(experiment_ids=[e3])))["experiment_ids"] == [e2, e3]
    expect_error(NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: client.add_dataset_to_experiments(ds, ["424242"]))
    client.delete_experiment(e1)
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: client.add_dataset_to_experiments(ds, [e1])
    )
    expect_error(
        grpc.StatusCode.FAILED_PRECONDITION,
        "EXPERIMENT_DELETED",
        lambda: client.create_dataset("in-deleted", experiment_ids=[e1]),
    )
    assert client.remove_dataset_from_experiments(ds, [e2])["experiment_ids"] == [e3]
    expect_error(NOT_FOUND, "DATASET_NOT_FOUND", lambda: client.add_dataset_to_experiments("d-" + "0" * 32, [e3]))


def test_tags_set_merge_and_delete(client: Client) -> None:
    ds = client.create_dataset("tags", tags={"a": "1"})
    client.set_dataset_tags(ds["dataset_id"], {"b": "2", "a": "3"})
    got = client.get_dataset(ds["dataset_id"])
    assert got["tags"] == {"a": "3", "b": "2"} and got["update_time"] >= ds["update_time"]
    assert got["version"] == 0  # tags are not records: no version
    client.delete_dataset_tag(ds["dataset_id"], "a")
    client.delete_dataset_tag(ds["dataset_id"], "a")  # idempotent
    assert client.get_dataset(ds["dataset_id"])["tags"] == {"b": "2"}
    long_value = "v" * 8_000
    client.set_dataset_tags(ds["dataset_id"], {"long": long_value})
    assert client.get_dataset(ds["dataset_id"])["tags"]["long"] == long_value  # returned whole
    expect_error(NOT_FOUND, "DATASET_NOT_FOUND", lambda: client.set_dataset_tags("d-" + "1" * 32, {"a": "b"}))
    expect_error(NOT_FOUND, "DATASET_NOT_FOUND", lambda: client.delete_dataset_tag("d-" + "1" * 32, "a"))


def test_search_by_filter_order_and_experiments(client: Client) -> None:
    exp = client.create_experiment("search-ds")["experiment_id"]
    made = []
    for i, (name, tags) in enumerate(
        [
            ("qa-a", {"team": "search", "mlflow.user": "ann"}),
            ("qa-b", {"team": "ads"}),
            ("eval-c", {"team": "search", "mlflow.user": "bob"}),
            ("qa-d", {}),
        ]
    ):
        time.sleep(0.002)  # a create_time of its own (milliseconds) for each: the filter below tells them apart
        made.append(client.create_dataset(name, experiment_ids=[exp] if i % 2 else [], tags=tags))
    ids = [d["dataset_id"] for d in made]

    def names(flt: str = "", **kw: object) -> list[str]:
        return [d["name"] for d in client.search_datasets(flt, **kw)]  # type: ignore[arg-type]

    assert names() == ["qa-d", "eval-c", "qa-b", "qa-a"]  # create_time DESC, then dataset_id
    assert names("name LIKE 'qa-%'", order_by=["name ASC"]) == ["qa-a", "qa-b", "qa-d"]
    assert names("tags.team = 'search'", order_by=["name"]) == ["eval-c", "qa-a"]
    assert names("tags.team IS NULL") == ["qa-d"]
    assert names("created_by = 'bob' OR last_updated_by = 'ann'", order_by=["name"]) == ["eval-c", "qa-a"]
    assert names("created_by IS NULL", order_by=["name"]) == ["qa-b", "qa-d"]
    assert names(f"create_time >= {made[2]['create_time'].timestamp() * 1000:.0f}") == ["qa-d", "eval-c"]
    assert names(experiment_ids=[exp], order_by=["name"]) == ["qa-b", "qa-d"]
    assert names("NOT name = 'qa-b'", experiment_ids=[exp]) == ["qa-d"]
    paged = [d["dataset_id"] for d in client.search_datasets(order_by=["dataset_id"], page_size=1)]
    assert paged == sorted(ids)
    client.merge_records(ids[0], [SEED_RECORD])
    assert names(order_by=["update_time DESC"])[0] == "qa-a"  # the merge bumped it
    found = next(iter(client.search_datasets("name = 'qa-a'")))
    assert found["num_records"] == 1 and found["schema"]["inputs"]  # search returns full datasets


def test_delete_is_hard_cascading_and_idempotent(client: Client, database: Database) -> None:
    exp = client.create_experiment("cascade")["experiment_id"]
    ds = client.create_dataset("doomed", experiment_ids=[exp], tags={"t": "1"})["dataset_id"]
    keep = client.create_dataset("kept", experiment_ids=[exp], tags={"t": "1"})["dataset_id"]
    for target in (ds, keep):
        client.merge_records(target, [SEED_RECORD, {"inputs": {"q": 1}}])
        client.merge_records(target, [{"inputs": {"q": 1}, "outputs": 2}])
    before = {t: count_rows(database, t) for t in DATASET_TABLES}
    client.delete_dataset(ds)
    after = {t: count_rows(database, t) for t in DATASET_TABLES}
    for table in DATASET_TABLES:
        if table != "request_ids":
            assert after[table] * 2 == before[table], table  # exactly the deleted dataset's rows went
    client.delete_dataset(ds)  # deleting what is gone succeeds
    expect_error(NOT_FOUND, "DATASET_NOT_FOUND", lambda: client.get_dataset(ds))
    expect_error(NOT_FOUND, "DATASET_NOT_FOUND", lambda: list(client.iter_records(ds)))
    assert client.get_dataset(keep)["num_records"] == 2


@pytest.mark.parametrize("rpc", ["records", "versions", "diff", "merge", "delete_records"])
def test_record_rpcs_on_an_unknown_dataset_are_not_found(client: Client, rpc: str) -> None:
    unknown = "d-" + "9" * 32
    calls = {
        "records": lambda: list(client.iter_records(unknown)),
        "versions": lambda: list(client.list_dataset_versions(unknown)),
        "diff": lambda: list(client.diff_dataset_versions(unknown)),
        "merge": lambda: client.merge_records(unknown, [{"inputs": {"q": 1}}]),
        "delete_records": lambda: client.delete_records(unknown, ["dr-" + "0" * 32]),
    }
    expect_error(NOT_FOUND, "DATASET_NOT_FOUND", calls[rpc])


def test_delete_records_ignores_unknown_ids_and_counts(client: Client) -> None:
    ds = client.create_dataset("deletions")["dataset_id"]
    ids = [
        r["dataset_record_id"] for r in client.merge_records(ds, [{"inputs": {"i": i}} for i in range(4)])["results"]
    ]
    assert client.delete_records(ds, [ids[0], ids[0], "dr-" + "a" * 32]) == 1
    assert client.delete_records(ds, [ids[0]]) == 0  # already deleted: no version
    got = client.get_dataset(ds)
    assert (got["version"], got["num_records"]) == (2, 3)
    versions = list(client.list_dataset_versions(ds))
    assert (versions[0]["deleted_count"], versions[0]["added_count"], versions[0]["created_by"]) == (1, 0, "")
    other = client.create_dataset("other")["dataset_id"]
    assert client.delete_records(other, ids[1:]) == 0  # ids of another dataset are unknown here
