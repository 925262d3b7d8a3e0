"""Domain objects of evaluation datasets (SPEC §5), as the dataset repositories take and return them.

Records are returned as the serialized ``mlgenai.v1.DatasetRecord`` the server built when it
wrote them (like spans, ``store/repositories/trace_reads.py``): reading 100,000 records then
costs a byte copy per record instead of a JSON-to-Struct conversion (~40 µs each in Python).
The store never looks inside those bytes; it gets them from a ``RecordCodec`` the server
passes to the merge.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol

SOURCE_TYPES = ("TRACE", "HUMAN", "DOCUMENT", "CODE")
CREATED, UPDATED, UNCHANGED = "CREATED", "UPDATED", "UNCHANGED"
ADDED, REMOVED, CHANGED = "ADDED", "REMOVED", "CHANGED"
USER_TAG = "mlflow.user"


@dataclass(frozen=True, slots=True)
class Dataset:
    dataset_id: str
    name: str
    digest: str
    version: int
    num_records: int
    tags: Mapping[str, str]
    experiment_ids: list[str]
    # {"inputs"|"outputs"|"expectations": {path: field summary}, "truncated": bool}; see
    # store/dataset_stats.py (FieldStats.summary).
    summary: Mapping[str, Any]
    created_by: str | None
    last_updated_by: str | None
    create_time_ms: int
    update_time_ms: int


@dataclass(slots=True)  # not frozen: its __init__ is half the cost, and one is made per request record
class RecordInput:
    """One record of a merge, as plain JSON values (numbers normalized, see store/canonical.py).

    ``origin`` is the caller's own representation of the record (the request's protobuf
    message); the store hands it back to the ``RecordCodec`` and never looks inside.
    """

    inputs: dict[str, Any]
    origin: object
    has_outputs: bool = False  # outputs given; a None value then clears them
    outputs: Any = None
    expectations: dict[str, Any] | None = None  # None: not given
    source_type: str | None = None  # None: inferred
    source_data: dict[str, Any] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: one is made per record version written (and frozen costs)
class RecordMeta:
    """The server-assigned fields of a record version."""

    dataset_id: str
    dataset_record_id: str
    source_type: str
    create_time_ms: int
    update_time_ms: int
    created_by: str | None
    last_updated_by: str | None


class RecordCodec(Protocol):
    """Builds the stored (serialized) form of record versions; implemented by the server."""

    def created(self, origin: object, meta: RecordMeta) -> bytes:
        """A new record from ``origin``: its inputs, outputs (unless null), expectations,
        tags and source data, with ``meta``."""
        ...

    def merged(self, stored: bytes, origin: object, meta: RecordMeta) -> bytes:
        """``stored`` with ``origin`` merged in (outputs replaced when given, null clears;
        expectations and tags key by key) and ``meta``."""
        ...


@dataclass(frozen=True, slots=True)
class MergeResult:
    results: list[tuple[str, str]]  # per request record: (dataset_record_id, outcome)
    created: int
    updated: int
    unchanged: int
    version: int
    digest: str
    num_records: int


@dataclass(frozen=True, slots=True)
class DeleteResult:
    deleted: int
    version: int


@dataclass(frozen=True, slots=True)
class DatasetVersion:
    dataset_id: str
    version: int
    digest: str
    create_time_ms: int
    created_by: str | None
    added: int
    updated: int
    deleted: int
    num_records: int


@dataclass(frozen=True, slots=True)
class RecordChange:
    change_type: str  # ADDED / REMOVED / CHANGED
    dataset_record_id: str
    before: bytes | None  # the record at from_version
    after: bytes | None  # the record at to_version


@dataclass(frozen=True, slots=True)
class Diff:
    changes: list[RecordChange]
    next_page_token: str
    from_version: int
    to_version: int


@dataclass(frozen=True, slots=True)
class TraceSource:
    """What CreateRecordsFromTraces takes from a trace (plain JSON values)."""

    trace_id: str
    inputs: Any  # the root span's inputs (None when there is no root span)
    outputs: Any
    expectations: dict[str, Any]
    session_id: str | None
