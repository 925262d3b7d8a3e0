"""Dataset records: proto -> store input (validated), and the codec that builds stored records.

``to_input`` converts a request's ``DatasetRecord`` into plain JSON values in one pass that
also checks what the databases cannot store or JSON cannot say (NUL characters, non-finite
numbers); numbers come out in the canonical form of ``store/canonical.py`` (whole doubles
within 2**53 as ``int``).

``RECORD_CODEC`` is the ``store.dataset_domain.RecordCodec`` the store calls for each record
version it writes: the serialized ``DatasetRecord`` that reads return as they are. A new record
is the request's own message with the server's fields set; a merged one is the stored
message with the request's outputs / expectations / tags applied by protobuf operations
(no JSON conversion on the hot path). The rules mirror ``store/dataset_merge.py``; the API
tests compare every read with a Python model of the rules.
"""

from __future__ import annotations

from typing import Any

from google.protobuf import struct_pb2

from mlgenai.client.convert import to_struct, to_value
from mlgenai.v1 import evaluation_dataset_pb2 as dpb
from server.convert.common import set_timestamp
from server.convert.values import HasNul, NotFinite, struct_of, value_of
from server.validation import Violations
from store import limits
from store.dataset_domain import RecordInput, RecordMeta, TraceSource
from store.errors import FailedPrecondition

SOURCE_TYPES = {
    dpb.DATASET_RECORD_SOURCE_TYPE_TRACE: "TRACE",
    dpb.DATASET_RECORD_SOURCE_TYPE_HUMAN: "HUMAN",
    dpb.DATASET_RECORD_SOURCE_TYPE_DOCUMENT: "DOCUMENT",
    dpb.DATASET_RECORD_SOURCE_TYPE_CODE: "CODE",
}
SOURCE_TYPES_TO_PROTO = {v: k for k, v in SOURCE_TYPES.items()}


def _struct(s: struct_pb2.Struct) -> dict[str, Any]:
    return struct_of(s, reject_nul=True)


def _value(v: struct_pb2.Value) -> Any:
    return value_of(v, reject_nul=True)


def _checked(checks: Violations, field: str, convert: Any, message: Any) -> Any:
    try:
        return convert(message)
    except (NotFinite, HasNul) as exc:
        checks.add(field, str(exc))
    except RecursionError:
        checks.add(field, "nested too deeply")
    return None


def to_input(rec: dpb.DatasetRecord, checks: Violations, at: str) -> RecordInput | None:
    """The store input of one request record; problems go to ``checks`` (and None is returned)."""
    try:  # the common case: a valid record, converted without per-field bookkeeping
        fast = _fast_input(rec)
    except (NotFinite, HasNul, RecursionError):
        fast = None
    if fast is not None:
        return fast
    before = len(checks.items)
    inputs = _checked(checks, f"{at}.inputs", _struct, rec.inputs) if rec.HasField("inputs") else None
    if not rec.inputs.fields and len(checks.items) == before:
        checks.add(f"{at}.inputs", "required: a non-empty object")
    has_outputs = rec.HasField("outputs")
    outputs = _checked(checks, f"{at}.outputs", _value, rec.outputs) if has_outputs else None
    has_expectations = rec.HasField("expectations")
    expectations = _checked(checks, f"{at}.expectations", _struct, rec.expectations) if has_expectations else None
    source_type, source_data = None, dict[str, Any]()
    if rec.HasField("source"):
        number = rec.source.source_type
        if number != dpb.DATASET_RECORD_SOURCE_TYPE_UNSPECIFIED and number not in SOURCE_TYPES:
            checks.add(f"{at}.source.source_type", "TRACE, HUMAN, DOCUMENT or CODE")
        source_type = SOURCE_TYPES.get(number)
        source_data = _checked(checks, f"{at}.source.source_data", _struct, rec.source.source_data) or {}
    if not _plain_tags(rec.tags):
        checks.tags(f"{at}.tags", rec.tags)  # the detailed violations
    if len(checks.items) > before:
        return None
    return RecordInput(
        inputs=inputs or {},
        origin=rec,
        has_outputs=has_outputs,
        outputs=outputs,
        expectations=expectations,
        source_type=source_type,
        source_data=source_data,
        tags=dict(rec.tags),
    )


def _fast_input(rec: dpb.DatasetRecord) -> RecordInput | None:
    """``to_input`` of a valid record; None when something needs the detailed checks."""
    if not rec.inputs.fields:
        return None
    tags = dict(rec.tags)
    if not _plain_tags(tags):
        return None
    has_outputs = rec.HasField("outputs")
    source_type, source_data = None, {}
    if rec.HasField("source"):
        source = rec.source
        number = source.source_type
        if number != dpb.DATASET_RECORD_SOURCE_TYPE_UNSPECIFIED:
            source_type = SOURCE_TYPES.get(number)
            if source_type is None:
                return None
        source_data = _struct(source.source_data)
    return RecordInput(
        _struct(rec.inputs),
        rec,
        has_outputs,
        _value(rec.outputs) if has_outputs else None,
        _struct(rec.expectations) if rec.HasField("expectations") else None,
        source_type,
        source_data,
        tags,
    )


def _plain_tags(tags: Any) -> bool:
    """The common case, checked fast: tags within every limit of ``Violations.tags``."""
    if len(tags) > limits.TAGS_PER_ENTITY_MAX:
        return False
    for key in tags:
        value = tags[key]
        if not 0 < len(key) <= limits.TAG_KEY_MAX or len(value) > limits.TAG_VALUE_MAX:
            return False
        if "\x00" in key or "\x00" in value:
            return False
    return True


def from_trace(source: TraceSource) -> RecordInput:
    """The record CreateRecordsFromTraces makes of a trace (FAILED_PRECONDITION without inputs)."""
    if not isinstance(source.inputs, dict) or not source.inputs:
        raise FailedPrecondition(
            "TRACE_HAS_NO_INPUTS",
            f"trace {source.trace_id!r} has no root span whose inputs are a non-empty object",
            {"trace_id": source.trace_id},
        )
    data: dict[str, Any] = {"trace_id": source.trace_id}
    if source.session_id:
        data["session_id"] = source.session_id
    origin = dpb.DatasetRecord(
        inputs=to_struct(source.inputs),
        expectations=to_struct(source.expectations),
        source=dpb.DatasetRecordSource(source_type=dpb.DATASET_RECORD_SOURCE_TYPE_TRACE, source_data=to_struct(data)),
    )
    has_outputs = source.outputs is not None
    if has_outputs:
        origin.outputs.CopyFrom(to_value(source.outputs))
    return RecordInput(
        inputs=source.inputs,
        origin=origin,
        has_outputs=has_outputs,
        outputs=source.outputs,
        expectations=source.expectations,
        source_type="TRACE",
        source_data=data,
    )


def _is_null(v: struct_pb2.Value) -> bool:
    return v.WhichOneof("kind") in (None, "null_value")


def _set_meta(msg: dpb.DatasetRecord, meta: RecordMeta) -> None:
    """The server's fields (they overwrite whatever the caller sent in output-only fields)."""
    msg.dataset_record_id = meta.dataset_record_id
    msg.dataset_id = meta.dataset_id
    set_timestamp(msg.create_time, meta.create_time_ms)
    set_timestamp(msg.update_time, meta.update_time_ms)
    msg.created_by = meta.created_by or ""
    msg.last_updated_by = meta.last_updated_by or ""


class ProtoRecordCodec:
    """Stored records as serialized ``mlgenai.v1.DatasetRecord`` (see the module docstring)."""

    def created(self, origin: object, meta: RecordMeta) -> bytes:
        assert isinstance(origin, dpb.DatasetRecord)
        msg = dpb.DatasetRecord()
        msg.MergeFrom(origin)  # one C call; _set_meta overwrites every output-only field
        if msg.HasField("outputs") and _is_null(msg.outputs):
            msg.ClearField("outputs")
        msg.expectations.SetInParent()
        msg.source.source_type = SOURCE_TYPES_TO_PROTO[meta.source_type]
        msg.source.source_data.SetInParent()
        _set_meta(msg, meta)
        return msg.SerializeToString()

    def merged(self, stored: bytes, origin: object, meta: RecordMeta) -> bytes:
        assert isinstance(origin, dpb.DatasetRecord)
        msg = dpb.DatasetRecord.FromString(stored)
        if origin.HasField("outputs"):
            if _is_null(origin.outputs):
                msg.ClearField("outputs")
            else:
                msg.outputs.CopyFrom(origin.outputs)
        fields, given = msg.expectations.fields, origin.expectations.fields
        for key in given:
            fields[key].CopyFrom(given[key])
        msg.tags.update(origin.tags)
        _set_meta(msg, meta)
        return msg.SerializeToString()


RECORD_CODEC = ProtoRecordCodec()
