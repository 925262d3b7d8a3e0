"""Dataset helpers of the client: record dicts to messages, batching, to_pandas (no server needed)."""

from __future__ import annotations

import sys
import types
import uuid
from collections.abc import Iterator
from typing import Any

import grpc
import pytest

from mlgenai.client import Client, to_dict
from mlgenai.client._datasets import _batch_request_id, record_to_proto
from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as pb


def test_record_dicts_become_messages() -> None:
    msg = record_to_proto(
        {
            "inputs": {"q": "2+2?", "n": 2},
            "outputs": None,
            "expectations": {"answer": "4"},
            "source": {"source_type": "human", "source_data": {"by": "ann"}},
            "tags": {"k": 1},
        }
    )
    assert msg.HasField("outputs") and msg.outputs.WhichOneof("kind") == "null_value"  # null: clear on merge
    assert msg.source.source_type == dpb.DATASET_RECORD_SOURCE_TYPE_HUMAN and dict(msg.tags) == {"k": "1"}
    back = to_dict(msg)
    assert back["inputs"] == {"q": "2+2?", "n": 2} and back["expectations"] == {"answer": "4"}
    assert not record_to_proto({"inputs": {"q": 1}}).HasField("outputs")  # absent: keep on merge


@pytest.mark.parametrize(
    ("record", "error"),
    [
        ({"inputs": "text"}, TypeError),
        ({}, TypeError),
        ({"inputs": {"q": 1}, "expectations": ["x"]}, TypeError),
        ({"inputs": {"q": 1}, "source": {"source_type": "ROBOT"}}, ValueError),
    ],
)
def test_malformed_record_dicts_are_refused(record: dict[str, Any], error: type[Exception]) -> None:
    with pytest.raises(error):
        record_to_proto(record)


def test_batches_get_request_ids_derived_from_the_callers() -> None:
    rid = str(uuid.uuid4())
    ids = [_batch_request_id(rid, i) for i in range(3)]
    assert ids[0] == rid and len(set(ids)) == 3 and ids == [_batch_request_id(rid, i) for i in range(3)]
    assert _batch_request_id("", 5) == ""


class FakeStub:
    """Records MergeRecords requests; answers one CREATED result per record."""

    def __init__(self) -> None:
        self.requests: list[pb.MergeRecordsRequest] = []

    def MergeRecords(self, request: pb.MergeRecordsRequest) -> pb.MergeRecordsResponse:
        self.requests.append(request)
        n = len(request.records)
        return pb.MergeRecordsResponse(
            results=[
                pb.RecordMergeResult(dataset_record_id=f"dr-{i}", outcome=dpb.MERGE_OUTCOME_CREATED) for i in range(n)
            ],
            created_count=n,
            version=len(self.requests),
        )


def test_merge_records_batches_and_sums() -> None:
    client = Client(grpc.insecure_channel("127.0.0.1:1"))
    stub = FakeStub()
    client.datasets = stub  # type: ignore[assignment]
    result = client.merge_records("d-" + "0" * 32, [{"inputs": {"i": i}} for i in range(25)], batch_size=10)
    assert [len(r.records) for r in stub.requests] == [10, 10, 5]
    assert result["created_count"] == 25 and len(result["results"]) == 25 and result["version"] == 3
    with pytest.raises(ValueError):
        client.merge_records("d-" + "0" * 32, [], batch_size=10_001)
    client.close()


def test_to_pandas_needs_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(grpc.insecure_channel("127.0.0.1:1"))
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"mlgenai-client\[pandas\]"):
        client.to_pandas("d-" + "0" * 32)
    client.close()


def test_to_pandas_makes_one_row_per_record(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = types.ModuleType("pandas")
    fake.DataFrame = lambda rows: ("frame", rows)  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "pandas", fake)
    client = Client(grpc.insecure_channel("127.0.0.1:1"))
    rows = [{"dataset_record_id": "dr-1", "inputs": {"q": 1}}, {"dataset_record_id": "dr-2", "inputs": {"q": 2}}]

    def iter_records(dataset_id: str, version: int | None = None) -> Iterator[dict[str, Any]]:
        assert version == 4
        yield from rows

    monkeypatch.setattr(client, "iter_records", iter_records)
    assert client.to_pandas("d-" + "0" * 32, version=4) == ("frame", rows)
    client.close()
