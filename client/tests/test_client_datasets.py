"""Dataset helpers of the client: record dicts to messages, batching, to_pandas (no server needed)."""

from __future__ import annotations

import sys
import uuid
from typing import Any

import grpc
import pytest

from mlgenai.client import Client, to_dict
from mlgenai.client._datasets import _batch_request_id, record_to_proto
from mlgenai.v1 import evaluation_dataset_pb2 as dpb


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


def test_to_pandas_needs_pandas(monkeypatch: pytest.MonkeyPatch) -> None:
    client = Client(grpc.insecure_channel("127.0.0.1:1"))
    monkeypatch.setitem(sys.modules, "pandas", None)  # as if it were not installed
    with pytest.raises(ImportError, match=r"mlgenai-client\[pandas\]"):
        client.to_pandas("d-" + "0" * 32)
    client.close()
