"""MergeRecords (SPEC §5.3) through the real server: every merge rule, outcomes, versions, authors."""

from __future__ import annotations

import uuid

import grpc
import pytest

from mlgenai.client import Client
from mlgenai.v1 import evaluation_dataset_service_pb2 as pb
from store.uow import Database
from tests.api.dataset_support import SEED_RECORD, content, listed
from tests.helpers import count_rows, expect_error


@pytest.fixture
def dataset_id(client: Client) -> str:
    return str(client.create_dataset("merge-rules")["dataset_id"])


def only(client: Client, dataset_id: str) -> dict:
    records = list(client.iter_records(dataset_id))
    assert len(records) == 1, records
    return records[0]


def outcomes(result: dict) -> list[str]:
    return [r["outcome"] for r in result["results"]]


def test_seed_example_record_round_trips_exactly(client: Client, dataset_id: str) -> None:
    result = client.merge_records(dataset_id, [SEED_RECORD])
    assert outcomes(result) == ["CREATED"] and result["version"] == 1 and result["num_records"] == 1
    record = only(client, dataset_id)
    assert content(record) == SEED_RECORD
    assert record["dataset_record_id"] == result["results"][0]["dataset_record_id"]
    assert record["dataset_record_id"].startswith("dr-") and len(record["dataset_record_id"]) == 35
    assert record["dataset_id"] == dataset_id
    assert record["create_time"] == record["update_time"] is not None
    assert content(client.get_record(dataset_id, record["dataset_record_id"])) == SEED_RECORD


def test_same_inputs_in_any_key_order_and_number_spelling_are_one_record(client: Client, dataset_id: str) -> None:
    first = client.merge_records(dataset_id, [{"inputs": {"a": 1, "b": {"x": [1, 2], "y": "z"}}}])
    again = client.merge_records(dataset_id, [{"inputs": {"b": {"y": "z", "x": [1.0, 2]}, "a": 1.0}}])
    assert outcomes(again) == ["UNCHANGED"]
    assert again["results"][0]["dataset_record_id"] == first["results"][0]["dataset_record_id"]
    other = client.merge_records(dataset_id, [{"inputs": {"a": True, "b": {"x": [1, 2], "y": "z"}}}])
    assert outcomes(other) == ["CREATED"]  # true is not 1
    assert other["num_records"] == 2


def test_outputs_replaced_when_given_kept_when_absent_cleared_by_null(client: Client, dataset_id: str) -> None:
    client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": "first"}])
    assert outcomes(client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": {"answer": 2}}])) == ["UPDATED"]
    assert only(client, dataset_id)["outputs"] == {"answer": 2}
    assert outcomes(client.merge_records(dataset_id, [{"inputs": {"q": 1}, "expectations": {"e": 1}}])) == ["UPDATED"]
    assert only(client, dataset_id)["outputs"] == {"answer": 2}  # absent: kept
    assert outcomes(client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": None}])) == ["UPDATED"]
    assert only(client, dataset_id)["outputs"] is None  # explicit null: cleared
    assert outcomes(client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": None}])) == ["UNCHANGED"]
    assert outcomes(client.merge_records(dataset_id, [{"inputs": {"q": 2}, "outputs": None}])) == ["CREATED"]
    assert [r["outputs"] for r in client.iter_records(dataset_id)] == [None, None]


def test_expectations_and_tags_merge_key_by_key(client: Client, dataset_id: str) -> None:
    client.merge_records(
        dataset_id, [{"inputs": {"q": 1}, "expectations": {"a": 1, "b": 2}, "tags": {"x": "1", "y": "2"}}]
    )
    result = client.merge_records(
        dataset_id, [{"inputs": {"q": 1}, "expectations": {"b": 3, "c": None}, "tags": {"y": "3", "z": "4"}}]
    )
    assert outcomes(result) == ["UPDATED"]
    record = only(client, dataset_id)
    assert record["expectations"] == {"a": 1, "b": 3, "c": None}  # null is stored, not a removal
    assert record["tags"] == {"x": "1", "y": "3", "z": "4"}
    same = client.merge_records(dataset_id, [{"inputs": {"q": 1}, "expectations": {"a": 1}, "tags": {"x": "1"}}])
    assert outcomes(same) == ["UNCHANGED"] and same["version"] == result["version"]


def test_source_inputs_create_time_and_created_by_never_change(client: Client, dataset_id: str) -> None:
    first = {
        "inputs": {"q": 1},
        "source": {"source_type": "DOCUMENT", "source_data": {"doc": "a.pdf"}},
        "tags": {"mlflow.user": "alice"},
    }
    client.merge_records(dataset_id, [first])
    before = only(client, dataset_id)
    later = {
        "inputs": {"q": 1.0},
        "source": {"source_type": "TRACE", "source_data": {"trace_id": "tr-" + "0" * 32}},
        "tags": {"mlflow.user": "bob"},
        "outputs": "x",
    }
    assert outcomes(client.merge_records(dataset_id, [later])) == ["UPDATED"]
    after = only(client, dataset_id)
    assert after["source"] == first["source"] and after["inputs"] == {"q": 1}
    assert after["create_time"] == before["create_time"] and after["update_time"] >= before["update_time"]
    assert (before["created_by"], before["last_updated_by"]) == ("alice", "alice")
    assert (after["created_by"], after["last_updated_by"]) == ("alice", "bob")
    client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": "y"}])
    assert only(client, dataset_id)["last_updated_by"] == "bob"  # no mlflow.user tag: unchanged


def test_source_is_inferred_when_absent(client: Client, dataset_id: str) -> None:
    client.merge_records(
        dataset_id,
        [
            {"inputs": {"q": 1}, "expectations": {"answer": "4"}},
            {"inputs": {"q": 2}},
            {"inputs": {"q": 3}, "expectations": {}},
            {"inputs": {"q": 4}, "source": {"source_type": "", "source_data": {"by": "me"}}, "expectations": {"a": 1}},
        ],
    )
    sources = [r["source"] for r in client.iter_records(dataset_id)]
    assert sources == [
        {"source_type": "HUMAN", "source_data": {}},
        {"source_type": "CODE", "source_data": {}},
        {"source_type": "CODE", "source_data": {}},
        {"source_type": "HUMAN", "source_data": {"by": "me"}},
    ]


def test_duplicates_in_one_batch_merge_in_order(client: Client, dataset_id: str) -> None:
    batch = [
        {"inputs": {"q": 1}, "outputs": "a", "expectations": {"k": 1}},
        {"inputs": {"q": 2}},
        {"inputs": {"q": 1}, "expectations": {"k": 2, "j": 1}},
        {"inputs": {"q": 1}, "expectations": {"k": 2}},
        {"inputs": {"q": 1}, "outputs": None},
    ]
    result = client.merge_records(dataset_id, batch)
    assert outcomes(result) == ["CREATED", "CREATED", "UPDATED", "UNCHANGED", "UPDATED"]
    assert (result["created_count"], result["updated_count"], result["unchanged_count"]) == (2, 2, 1)
    ids = [r["dataset_record_id"] for r in result["results"]]
    assert ids[0] == ids[2] == ids[3] == ids[4] != ids[1]
    assert result["version"] == 1 and result["num_records"] == 2  # one call, one version
    records = listed(client, dataset_id)
    assert records[ids[0]]["outputs"] is None and records[ids[0]]["expectations"] == {"k": 2, "j": 1}
    versions = list(client.list_dataset_versions(dataset_id))
    assert [(v["version"], v["added_count"], v["updated_count"]) for v in versions] == [(1, 2, 0)]


def test_a_merge_that_changes_nothing_creates_no_version(client: Client, dataset_id: str, database: Database) -> None:
    batch = [SEED_RECORD, {"inputs": {"q": 1}, "expectations": {"a": [1, {"b": None}]}}]
    first = client.merge_records(dataset_id, batch)
    rows = count_rows(database, "evaluation_dataset_records")
    dataset = client.get_dataset(dataset_id)
    again = client.merge_records(dataset_id, batch)
    assert outcomes(again) == ["UNCHANGED", "UNCHANGED"]
    assert again["version"] == first["version"] == 1 and again["digest"] == first["digest"]
    assert count_rows(database, "evaluation_dataset_records") == rows
    assert count_rows(database, "evaluation_dataset_versions") == 1
    assert client.get_dataset(dataset_id) == dataset  # update_time and last_updated_by included


def test_each_changing_call_is_one_version_and_keeps_history(client: Client, dataset_id: str) -> None:
    v1 = client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": 1}, {"inputs": {"q": 2}}])
    v2 = client.merge_records(dataset_id, [{"inputs": {"q": 1}, "outputs": 2}, {"inputs": {"q": 3}}])
    assert (v1["version"], v2["version"]) == (1, 2)
    old = listed(client, dataset_id, version=1)
    assert [c["outputs"] for c in old.values()] == [1, None]
    now = listed(client, dataset_id)
    assert [c["outputs"] for c in now.values()] == [2, None, None]
    assert list(now)[:2] == list(old)  # same ids, creation order kept across versions


def test_dataset_authors_come_from_mlflow_user_tags_and_are_never_cleared(client: Client) -> None:
    ds = client.create_dataset("authored", tags={"mlflow.user": "carol"})
    assert (ds["created_by"], ds["last_updated_by"]) == ("carol", "carol")
    client.merge_records(
        ds["dataset_id"],
        [{"inputs": {"q": 1}, "tags": {"mlflow.user": "dave"}}, {"inputs": {"q": 2}, "tags": {"mlflow.user": "erin"}}],
    )
    got = client.get_dataset(ds["dataset_id"])
    assert (got["created_by"], got["last_updated_by"]) == ("carol", "erin")  # the last record carrying it
    client.merge_records(ds["dataset_id"], [{"inputs": {"q": 3}}])
    assert client.get_dataset(ds["dataset_id"])["last_updated_by"] == "erin"  # MLflow nulls it here
    versions = list(client.list_dataset_versions(ds["dataset_id"]))
    assert [v["created_by"] for v in versions] == ["", "erin"]
    plain = client.create_dataset("anonymous")
    assert (plain["created_by"], plain["last_updated_by"]) == ("", "")


def test_request_id_makes_a_merge_idempotent(client: Client, dataset_id: str, database: Database) -> None:
    rid = str(uuid.uuid4())
    first = client.merge_records(dataset_id, [SEED_RECORD], request_id=rid)
    client.merge_records(dataset_id, [{"inputs": {"q": 9}}])
    again = client.merge_records(dataset_id, [SEED_RECORD], request_id=rid)
    assert again == first  # the first response, CREATED outcome and version 1 included
    assert count_rows(database, "evaluation_dataset_versions") == 2
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
        lambda: client.merge_records(dataset_id, [{"inputs": {"other": 1}}], request_id=rid),
        field="request_id",
    )


def test_merge_batches_client_side(client: Client, dataset_id: str) -> None:
    records = [{"inputs": {"i": i}} for i in range(25)] + [{"inputs": {"i": 0}, "outputs": "x"}]
    result = client.merge_records(dataset_id, records, batch_size=10)
    assert result["created_count"] == 25 and result["updated_count"] == 1
    assert len(result["results"]) == 26 and result["version"] == 3 and result["num_records"] == 25
    assert len(list(client.iter_records(dataset_id, page_size=7))) == 25


def test_too_many_tags_on_a_merged_record(client: Client, dataset_id: str, database: Database) -> None:
    client.merge_records(dataset_id, [{"inputs": {"q": 1}, "tags": {f"a{i}": "v" for i in range(600)}}])
    before = count_rows(database, "evaluation_dataset_records")
    expect_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED,
        "TOO_MANY_TAGS",
        lambda: client.merge_records(dataset_id, [{"inputs": {"q": 1}, "tags": {f"b{i}": "v" for i in range(600)}}]),
    )
    assert count_rows(database, "evaluation_dataset_records") == before


def test_output_only_fields_sent_by_the_caller_are_ignored(client: Client, dataset_id: str) -> None:
    req = pb.MergeRecordsRequest(dataset_id=dataset_id)
    rec = req.records.add(dataset_record_id="dr-" + "f" * 32, dataset_id="d-" + "e" * 32, created_by="mallory")
    rec.inputs.update({"q": 1})
    rec.create_time.FromMilliseconds(5)
    result = client.datasets.MergeRecords(req)
    record = only(client, dataset_id)
    assert record["dataset_record_id"] == result.results[0].dataset_record_id != "dr-" + "f" * 32
    assert record["dataset_id"] == dataset_id and record["created_by"] == ""
    assert record["create_time"].year > 2000
