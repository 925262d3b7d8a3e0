"""Evaluation datasets: domain -> proto, and the request checks shared by the dataset RPCs."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as pb
from server.convert.common import timestamp
from server.validation import Violations
from store import limits
from store.dataset_domain import Dataset, DatasetVersion, MergeResult, RecordChange
from store.dataset_stats import SECTIONS, TYPES

DATASET_ID = re.compile(r"d-[0-9a-f]{32}")
RECORD_ID = re.compile(r"dr-[0-9a-f]{32}")
EXPERIMENT_ID = re.compile(r"[0-9]{1,19}")
TRACE_ID = re.compile(r"tr-[0-9a-f]{32}")
OUTCOMES = {
    "CREATED": dpb.MERGE_OUTCOME_CREATED,
    "UPDATED": dpb.MERGE_OUTCOME_UPDATED,
    "UNCHANGED": dpb.MERGE_OUTCOME_UNCHANGED,
}
CHANGES = {
    "ADDED": dpb.RECORD_CHANGE_TYPE_ADDED,
    "REMOVED": dpb.RECORD_CHANGE_TYPE_REMOVED,
    "CHANGED": dpb.RECORD_CHANGE_TYPE_CHANGED,
}


# -- checks ------------------------------------------------------------------------------------


def check_dataset_id(checks: Violations, value: str, field: str = "dataset_id") -> None:
    if not DATASET_ID.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not a dataset id ('d-' + 32 lowercase hex characters)")


def check_ids(checks: Violations, field: str, values: Sequence[str], pattern: re.Pattern[str], what: str) -> None:
    """Each of ``values`` matches ``pattern`` (one violation per bad id, at most 10)."""
    bad = [(i, v) for i, v in enumerate(values) if not pattern.fullmatch(v)]
    for i, value in bad[:10]:
        checks.add(f"{field}[{i}]", f"{value[:50]!r} is not {what}")


def check_count(checks: Violations, field: str, count: int, low: int, high: int) -> None:
    if not low <= count <= high:
        checks.add(field, f"{low:,} to {high:,} items (got {count:,})")


def check_experiment_ids(checks: Violations, values: Sequence[str], *, required: bool) -> None:
    check_count(checks, "experiment_ids", len(values), 1 if required else 0, limits.DATASET_EXPERIMENT_IDS_MAX)
    check_ids(checks, "experiment_ids", values, EXPERIMENT_ID, "an experiment id (a decimal integer)")
    for i, value in enumerate(values):
        if EXPERIMENT_ID.fullmatch(value) and int(value) > limits.ID_INT_MAX:
            checks.add(f"experiment_ids[{i}]", "out of range")


def check_version(checks: Violations, field: str, value: int) -> None:
    if value < 0:
        checks.add(field, f"versions are 0 or more (got {value})")


# -- domain -> proto ---------------------------------------------------------------------------


def to_proto(d: Dataset) -> dpb.EvaluationDataset:
    msg = dpb.EvaluationDataset(
        dataset_id=d.dataset_id,
        name=d.name,
        digest=d.digest,
        tags=d.tags,
        experiment_ids=d.experiment_ids,
        create_time=timestamp(d.create_time_ms),
        update_time=timestamp(d.update_time_ms),
        created_by=d.created_by or "",
        last_updated_by=d.last_updated_by or "",
        version=d.version,
        num_records=d.num_records,
    )
    msg.schema.truncated = bool(d.summary.get("truncated"))
    msg.profile.num_records = d.num_records
    for section in SECTIONS:
        part: dict[str, Any] = d.summary.get(section) or {}
        schema, profile = getattr(msg.schema, section), getattr(msg.profile, section)
        for path in sorted(part):
            f = part[path]
            schema.add(path=path, types=[t for t in TYPES if f["t"].get(t)])
            item = profile.add(
                path=path, count=f["n"], type_counts=f["t"], distinct_count=f["d"], distinct_exact=f["x"]
            )
            if f["num"]:
                item.numbers.CopyFrom(_stats(f["num"]))
            if f["len"]:
                item.string_lengths.CopyFrom(_stats(f["len"]))
    return msg


def _stats(values: list[Any]) -> dpb.NumberStats:
    count, low, high, mean = values
    return dpb.NumberStats(count=count, min=low, max=high, mean=mean)


def merge_response(result: MergeResult) -> pb.MergeRecordsResponse:
    resp = pb.MergeRecordsResponse(
        created_count=result.created,
        updated_count=result.updated,
        unchanged_count=result.unchanged,
        version=result.version,
        digest=result.digest,
        num_records=result.num_records,
    )
    add = resp.results.add  # in place: a list of messages would be built, then copied
    for record_id, outcome in result.results:
        item = add()
        item.dataset_record_id, item.outcome = record_id, OUTCOMES[outcome]
    return resp


def version_to_proto(v: DatasetVersion) -> dpb.DatasetVersion:
    return dpb.DatasetVersion(
        dataset_id=v.dataset_id,
        version=v.version,
        digest=v.digest,
        create_time=timestamp(v.create_time_ms),
        created_by=v.created_by or "",
        added_count=v.added,
        updated_count=v.updated,
        deleted_count=v.deleted,
        num_records=v.num_records,
    )


def change_to_proto(c: RecordChange) -> pb.RecordChange:
    msg = pb.RecordChange(change_type=CHANGES[c.change_type], dataset_record_id=c.dataset_record_id)
    if c.before is not None:
        msg.before.MergeFromString(c.before)
    if c.after is not None:
        msg.after.MergeFromString(c.after)
    return msg


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def records_response(blobs: Sequence[bytes], next_page_token: str) -> pb.ListRecordsResponse:
    """The response around stored records, assembled as bytes: one parse instead of one per record."""
    parts: list[bytes] = []
    for blob in blobs:
        parts += (b"\x0a", _varint(len(blob)), blob)  # field 1 (records), length-delimited
    if next_page_token:
        token = next_page_token.encode()
        parts += (b"\x12", _varint(len(token)), token)  # field 2 (next_page_token)
    return pb.ListRecordsResponse.FromString(b"".join(parts))
