"""Records for the dataset workloads (issue 4): seed 003's example record, 1,000 per request.

A MergeRecords request of ``RECORDS_PER_CALL`` records is built and serialized once
(``merge_template``); every call then replaces two same-length markers in those bytes: the
dataset id (known only once the dataset exists) and a 7-digit batch number that makes the
inputs of each call new. Record ``i`` of batch ``b`` asks about "country #<b>-<i>"; the
``variant`` goes into its expectations, so a re-merge with another variant changes every
record and a re-merge with the same one changes none.
"""

from __future__ import annotations

from functools import cache

from google.protobuf import struct_pb2

from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as pb

RECORDS_PER_CALL = 1_000
DATASET_PLACEHOLDER = b"d-" + b"0" * 32
BATCH_MARKER = b"@@@@@@@"  # replaced by the 7-digit batch number


def seed_record(batch: str, i: int, variant: str) -> dpb.DatasetRecord:
    """A record shaped like the example of seeds/003 (inputs, outputs, expectations, source, tags)."""
    rec = dpb.DatasetRecord(
        source=dpb.DatasetRecordSource(source_type=dpb.DATASET_RECORD_SOURCE_TYPE_HUMAN),
        tags={"category": "geography", "difficulty": ("easy", "medium", "hard")[i % 3], "validated": "true"},
    )
    rec.inputs.update(
        {
            "question": f"What is the capital of country #{batch}-{i:04d}?",
            "context": f"Country #{batch}-{i:04d} is a country in Western Europe",
            "temperature": 0.7,
        }
    )
    rec.outputs.CopyFrom(struct_pb2.Value(struct_value=_struct({"answer": f"The capital is City {i}."})))
    rec.expectations.update({"name": "expected_answer", "value": f"City {i} ({variant})"})
    rec.source.source_data.update({"annotator": "geography_expert@company.com", "annotation_date": "2024-08-07"})
    return rec


def _struct(value: dict[str, str]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


@cache
def merge_template(variant: str, records: int = RECORDS_PER_CALL) -> bytes:
    """A serialized MergeRecordsRequest with the two markers (see the module docstring)."""
    req = pb.MergeRecordsRequest(
        dataset_id=DATASET_PLACEHOLDER.decode(),
        records=[seed_record(BATCH_MARKER.decode(), i, variant) for i in range(records)],
    )
    payload = req.SerializeToString()
    if payload.count(BATCH_MARKER) != 2 * records or payload.count(DATASET_PLACEHOLDER) != 1:
        raise AssertionError("a marker occurs elsewhere in the template")
    return payload


def merge_request(template: bytes, dataset_id: bytes, batch: int) -> bytes:
    return template.replace(DATASET_PLACEHOLDER, dataset_id, 1).replace(BATCH_MARKER, b"%07d" % batch)
