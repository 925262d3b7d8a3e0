"""EvaluationDatasetService rejects bad input: the status, the reason, the field, and nothing stored."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from mlgenai.client import Client, MlgenaiError
from mlgenai.client._datasets import record_to_proto
from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as pb
from store.uow import Database
from tests.api.dataset_support import DATASET_TABLES
from tests.helpers import expect_error, snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNKNOWN_DATASET = "d-" + "0" * 32


@contextmanager
def nothing_stored(db: Database) -> Iterator[None]:
    before = snapshot(db, *DATASET_TABLES)
    yield
    assert snapshot(db, *DATASET_TABLES) == before, "a rejected call changed the database"


def invalid(call: Callable[[], Any], field: str, reason: str = "INVALID_FIELD") -> MlgenaiError:
    return expect_error(INVALID, reason, call, field=field)


@pytest.fixture
def dataset_id(client: Client) -> str:
    ds = client.create_dataset("target")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"existing": 1}}])
    return str(ds)


def merge(client: Client, dataset_id: str, *records: dpb.DatasetRecord, request_id: str = "") -> Any:
    return client.datasets.MergeRecords(
        pb.MergeRecordsRequest(dataset_id=dataset_id, records=list(records), request_id=request_id)
    )


def with_value(field: str, value: struct_pb2.Value) -> dpb.DatasetRecord:
    rec = record_to_proto({"inputs": {"q": 1}})
    if field == "outputs":
        rec.outputs.CopyFrom(value)
    else:
        getattr(rec, field).fields["k"].CopyFrom(value)
    return rec


# -- MergeRecords ------------------------------------------------------------------------------

BAD_RECORD_IDS = [
    "no-inputs",
    "empty-inputs",
    "nul-value",
    "nul-key",
    "nan",
    "infinite-outputs",
    "nul-outputs",
    "infinite-expectation",
    "empty-tag-key",
    "long-tag-value",
    "long-tag-key",
    "nul-source-data",
]


@pytest.mark.parametrize(
    ("record", "field"),
    [
        (dpb.DatasetRecord(), "records[1].inputs"),
        (record_to_proto({"inputs": {}}), "records[1].inputs"),
        (with_value("inputs", struct_pb2.Value(string_value="a\x00b")), "records[1].inputs"),
        (record_to_proto({"inputs": {"a\x00": 1}}), "records[1].inputs"),
        (with_value("inputs", struct_pb2.Value(number_value=math.nan)), "records[1].inputs"),
        (with_value("outputs", struct_pb2.Value(number_value=math.inf)), "records[1].outputs"),
        (with_value("outputs", struct_pb2.Value(string_value="\x00")), "records[1].outputs"),
        (with_value("expectations", struct_pb2.Value(number_value=-math.inf)), "records[1].expectations"),
        (record_to_proto({"inputs": {"q": 1}, "tags": {"": "v"}}), "records[1].tags[]"),
        (record_to_proto({"inputs": {"q": 1}, "tags": {"k": "v" * 8_001}}), "records[1].tags[k]"),
        (record_to_proto({"inputs": {"q": 1}, "tags": {"k" * 251: "v"}}), "records[1].tags[" + "k" * 50 + "]"),
        (
            record_to_proto({"inputs": {"q": 1}, "source": {"source_data": {"x": "\x00"}}}),
            "records[1].source.source_data",
        ),
    ],
    ids=BAD_RECORD_IDS,
)
def test_merge_rejects_a_bad_record(
    client: Client, database: Database, dataset_id: str, record: dpb.DatasetRecord, field: str
) -> None:
    good = record_to_proto({"inputs": {"fine": 1}})
    with nothing_stored(database):
        invalid(lambda: merge(client, dataset_id, good, record), field)


def test_merge_rejects_an_unknown_source_type(client: Client, database: Database, dataset_id: str) -> None:
    rec = record_to_proto({"inputs": {"q": 1}})
    rec.source.source_type = 99  # type: ignore[assignment]
    with nothing_stored(database):
        invalid(lambda: merge(client, dataset_id, rec), "records[0].source.source_type")


def test_merge_rejects_inputs_that_are_not_an_object(client: Client, database: Database, dataset_id: str) -> None:
    """The contract types inputs as a Struct, so the client refuses before sending."""
    with nothing_stored(database), pytest.raises(TypeError, match="inputs must be a dict"):
        client.merge_records(dataset_id, [{"inputs": "What is 2+2?"}])
    with nothing_stored(database), pytest.raises(TypeError):
        client.merge_records(dataset_id, [{"outputs": 1}])


@pytest.mark.parametrize("count", [0, 10_001])
def test_merge_rejects_a_bad_batch_size(client: Client, database: Database, dataset_id: str, count: int) -> None:
    records = [record_to_proto({"inputs": {"i": i}}) for i in range(count)]
    with nothing_stored(database):
        invalid(lambda: merge(client, dataset_id, *records), "records")


def test_merge_takes_exactly_10000_records(client: Client, dataset_id: str) -> None:
    records = [record_to_proto({"inputs": {"i": i}}) for i in range(10_000)]
    assert merge(client, dataset_id, *records).created_count == 10_000


def test_merge_into_an_unknown_or_malformed_dataset(client: Client, database: Database) -> None:
    rec = record_to_proto({"inputs": {"q": 1}})
    with nothing_stored(database):
        expect_error(NOT_FOUND, "DATASET_NOT_FOUND", lambda: merge(client, UNKNOWN_DATASET, rec))
        invalid(lambda: merge(client, "d-XYZ", rec), "dataset_id")
        invalid(lambda: merge(client, "", rec), "dataset_id")


def test_merge_rejects_a_malformed_request_id(client: Client, database: Database, dataset_id: str) -> None:
    rec = record_to_proto({"inputs": {"q": 1}})
    with nothing_stored(database):
        invalid(lambda: merge(client, dataset_id, rec, request_id="not-a-uuid"), "request_id")


# -- reads -------------------------------------------------------------------------------------


def list_records(client: Client, dataset_id: str, **kw: Any) -> Any:
    return client.datasets.ListRecords(pb.ListRecordsRequest(dataset_id=dataset_id, **kw))


def test_list_records_rejects_bad_tokens_versions_and_sizes(client: Client, dataset_id: str) -> None:
    client.merge_records(dataset_id, [{"inputs": {"i": i}} for i in range(3)])
    token = list_records(client, dataset_id, page_size=1).next_page_token
    assert token
    for garbage in ("garbage", token[:-2], token + "x", "🙂"):
        invalid(lambda g=garbage: list_records(client, dataset_id, page_token=g), "page_token", "INVALID_PAGE_TOKEN")
    invalid(lambda: list_records(client, dataset_id, page_token=token, version=1), "page_token", "INVALID_PAGE_TOKEN")
    other = client.create_dataset("other")["dataset_id"]
    invalid(lambda: list_records(client, other, page_token=token), "page_token", "INVALID_PAGE_TOKEN")
    invalid(lambda: list_records(client, dataset_id, version=-1), "version")
    invalid(lambda: list_records(client, dataset_id, page_size=-1), "page_size")
    expect_error(NOT_FOUND, "DATASET_VERSION_NOT_FOUND", lambda: list_records(client, dataset_id, version=3))
    assert len(list_records(client, dataset_id, page_size=5_000).records) == 4  # clamped, not refused


def test_get_record_rejects_bad_ids(client: Client, dataset_id: str) -> None:
    get = client.datasets.GetRecord
    invalid(lambda: get(pb.GetRecordRequest(dataset_id=dataset_id, dataset_record_id="dr-1")), "dataset_record_id")
    expect_error(
        NOT_FOUND,
        "DATASET_RECORD_NOT_FOUND",
        lambda: get(pb.GetRecordRequest(dataset_id=dataset_id, dataset_record_id="dr-" + "0" * 32)),
    )
    invalid(lambda: client.get_dataset("not-an-id"), "dataset_id")


def test_diff_rejects_bad_versions(client: Client, dataset_id: str) -> None:
    diff = client.datasets.DiffDatasetVersions
    invalid(lambda: diff(pb.DiffDatasetVersionsRequest(dataset_id=dataset_id, from_version=-1)), "from_version")
    invalid(lambda: diff(pb.DiffDatasetVersionsRequest(dataset_id=dataset_id, to_version=-2)), "to_version")
    expect_error(
        NOT_FOUND,
        "DATASET_VERSION_NOT_FOUND",
        lambda: diff(pb.DiffDatasetVersionsRequest(dataset_id=dataset_id, from_version=0, to_version=2)),
    )
    token = diff(pb.DiffDatasetVersionsRequest(dataset_id=dataset_id, page_size=1)).next_page_token
    assert token == ""  # one change, one page
    invalid(
        lambda: diff(pb.DiffDatasetVersionsRequest(dataset_id=dataset_id, page_token="abc")),
        "page_token",
        "INVALID_PAGE_TOKEN",
    )


@pytest.mark.parametrize(
    ("flt", "order_by", "reason", "field"),
    [
        ("digest = 'x'", [], "INVALID_FILTER", "filter"),
        ("name = 1", [], "INVALID_FILTER", "filter"),
        ("name =", [], "INVALID_FILTER", "filter"),
        ("", ["digest"], "INVALID_ORDER_BY", "order_by"),
        ("", ["name SIDEWAYS"], "INVALID_ORDER_BY", "order_by"),
    ],
)
def test_search_rejects_bad_filters_and_orders(
    client: Client, flt: str, order_by: list[str], reason: str, field: str
) -> None:
    invalid(lambda: list(client.search_datasets(flt, order_by=order_by)), field, reason)


def test_search_rejects_bad_experiment_ids_and_tokens(client: Client) -> None:
    invalid(lambda: list(client.search_datasets(experiment_ids=["abc"])), "experiment_ids[0]")
    invalid(lambda: list(client.search_datasets(experiment_ids=[str(i) for i in range(101)])), "experiment_ids")
    req = pb.SearchDatasetsRequest(page_token="nope")
    invalid(lambda: client.datasets.SearchDatasets(req), "page_token", "INVALID_PAGE_TOKEN")


# -- dataset writes ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"name": ""}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "x" * 257}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"name": "ok", "tags": {"k": "a\x00"}}, "tags[k]"),
        ({"name": "ok", "experiment_ids": ["x1"]}, "experiment_ids[0]"),
        ({"name": "ok", "experiment_ids": ["99999999999999999999"]}, "experiment_ids[0]"),
        ({"name": "ok", "request_id": "nope"}, "request_id"),
    ],
)
def test_create_rejects_bad_input(client: Client, database: Database, kwargs: dict[str, Any], field: str) -> None:
    with nothing_stored(database):
        invalid(lambda: client.create_dataset(**kwargs), field)


def test_create_with_an_unknown_or_deleted_experiment(client: Client, database: Database) -> None:
    exp = client.create_experiment("gone")["experiment_id"]
    client.delete_experiment(exp)
    with nothing_stored(database):
        expect_error(NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: client.create_dataset("x", experiment_ids=["424242"]))
        expect_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "EXPERIMENT_DELETED",
            lambda: client.create_dataset("x", experiment_ids=[exp]),
        )


def test_tags_and_records_deletes_reject_bad_input(client: Client, database: Database, dataset_id: str) -> None:
    with nothing_stored(database):
        invalid(lambda: client.set_dataset_tags(dataset_id, {}), "tags")
        invalid(lambda: client.delete_dataset_tag(dataset_id, ""), "key")
        invalid(lambda: client.delete_records(dataset_id, ["dr-nope"]), "dataset_record_ids[0]")
        invalid(
            lambda: client.datasets.DeleteRecords(pb.DeleteRecordsRequest(dataset_id=dataset_id)), "dataset_record_ids"
        )
        invalid(lambda: client.delete_dataset("d-"), "dataset_id")
        invalid(lambda: client.add_dataset_to_experiments(dataset_id, []), "experiment_ids")
    client.set_dataset_tags(dataset_id, {f"k{i}": "v" for i in range(1_000)})
    with nothing_stored(database):
        expect_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_TAGS",
            lambda: client.set_dataset_tags(dataset_id, {"one": "more"}),
        )


def test_create_records_from_traces_rejects_bad_input(client: Client, database: Database, dataset_id: str) -> None:
    with nothing_stored(database):
        invalid(lambda: client.create_records_from_traces(dataset_id, []), "trace_ids")
        invalid(lambda: client.create_records_from_traces(dataset_id, ["tr-abc"]), "trace_ids[0]")
        invalid(lambda: client.create_records_from_traces(dataset_id, ["tr-" + "a" * 32] * 1_001), "trace_ids")
        expect_error(
            NOT_FOUND, "TRACE_NOT_FOUND", lambda: client.create_records_from_traces(dataset_id, ["tr-" + "a" * 32])
        )
        expect_error(
            NOT_FOUND,
            "DATASET_NOT_FOUND",
            lambda: client.create_records_from_traces(UNKNOWN_DATASET, ["tr-" + "a" * 32]),
        )
