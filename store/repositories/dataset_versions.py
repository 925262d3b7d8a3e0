"""Reads of a dataset's records at any version (SPEC §5.5): ListRecords, GetRecord, versions, diffs.

The storage is described in ``dataset_records.py``. A record version is visible at dataset
version N when ``valid_from <= N AND (valid_to IS NULL OR valid_to > N)``. Current reads
(no version) use the partial index on current rows; reads at a version walk the primary key
(dataset_id, position, valid_from) in creation order and skip the row versions not visible.

A diff from version a to version b looks only at row versions visible at exactly one of the
two (a row visible at both is unchanged), in position order, one page at a time: a record
with a row at b only is ADDED, at a only REMOVED, a row at each with different content
hashes CHANGED (equal hashes — changed and changed back — are skipped). Its page token is
the last position returned, signed and bound to the dataset and both versions.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.dataset_domain import ADDED, CHANGED, REMOVED, DatasetVersion, Diff, RecordChange
from store.domain import Page, SearchQuery
from store.orm.base import table
from store.orm.datasets import DatasetRecordRow, DatasetVersionRow
from store.query.filter_sql import FilterSpec
from store.query.keyset import OrderKey, OrderSpec, binding_of
from store.query.search import run_search
from store.repositories.dataset_sql import record_not_found, version_not_found

if TYPE_CHECKING:
    from store.uow import UnitOfWork

R = table(DatasetRecordRow)
V = table(DatasetVersionRow)
_P = sa.bindparam
_NO_FILTERS = FilterSpec()
_BY_POSITION = OrderSpec(keys=(OrderKey(("position",), R.c.position),), default=("position",), tiebreaker="position")
_BY_VERSION = OrderSpec(keys=(OrderKey(("version",), V.c.version),), default=("version DESC",), tiebreaker="version")


def visible_at(version: Any) -> sa.ColumnElement[bool]:
    return sa.and_(R.c.valid_from <= version, sa.or_(R.c.valid_to.is_(None), R.c.valid_to > version))


_RECORD_NOW = sa.select(R.c.proto).where(
    R.c.dataset_id == _P("b_id"), R.c.dataset_record_id == _P("b_record"), R.c.valid_to.is_(None)
)
_RECORD_AT = sa.select(R.c.proto).where(
    R.c.dataset_id == _P("b_id"), R.c.dataset_record_id == _P("b_record"), visible_at(_P("b_version"))
)


class DatasetReader:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    def resolve(self, dataset_id: str, version: int | None) -> int | None:
        """``version`` checked against the dataset's current one (None stays None: current)."""
        current = self._uow.datasets.current_version(dataset_id)
        if version is not None and version > current:
            raise version_not_found(dataset_id, version, current)
        return None if version is None else version

    def list_records(self, dataset_id: str, version: int | None, query: SearchQuery) -> Page[bytes]:
        """The stored records (serialized ``DatasetRecord``s), current or at ``version``, by position."""
        at = self.resolve(dataset_id, version)
        stmt = sa.select(R.c.proto, R.c.position).where(R.c.dataset_id == dataset_id)
        stmt = stmt.where(R.c.valid_to.is_(None) if at is None else visible_at(at))
        scope = (dataset_id, "current" if at is None else at)
        rows, token = run_search(self._uow, "ListRecords", stmt, query, _NO_FILTERS, _BY_POSITION, *scope)
        return Page([bytes(r[0]) for r in rows], token)

    def get_record(self, dataset_id: str, record_id: str, version: int | None) -> bytes:
        at = self.resolve(dataset_id, version)
        if at is None:
            rows = self._uow.fetch(_RECORD_NOW, {"b_id": dataset_id, "b_record": record_id})
        else:
            rows = self._uow.fetch(_RECORD_AT, {"b_id": dataset_id, "b_record": record_id, "b_version": at})
        if not rows:
            raise record_not_found(dataset_id, record_id)
        return bytes(rows[0][0])

    def list_versions(self, dataset_id: str, query: SearchQuery) -> Page[DatasetVersion]:
        self._uow.datasets.current_version(dataset_id)  # NOT_FOUND for an unknown dataset
        stmt = sa.select(*V.c).where(V.c.dataset_id == dataset_id)
        rows, token = run_search(self._uow, "ListDatasetVersions", stmt, query, _NO_FILTERS, _BY_VERSION, dataset_id)
        return Page([_version(r) for r in rows], token)

    def diff(self, dataset_id: str, from_version: int, to_version: int | None, page_size: int, token: str) -> Diff:
        current = self._uow.datasets.current_version(dataset_id)
        to_version = current if to_version is None else to_version
        for v in (from_version, to_version):
            if v > current:
                raise version_not_found(dataset_id, v, current)
        codec = self._uow.db.page_tokens
        binding = binding_of("DiffDatasetVersions", dataset_id, from_version, to_version)
        after = int(codec.decode(token, binding)[0]) if token else 0
        limit = 2 * page_size + 2  # a position has at most two rows: at from_version, at to_version
        params = {"b_id": dataset_id, "b_a": from_version, "b_b": to_version, "b_after": after, "b_limit": limit}
        rows = self._conn.execute(_DIFF, params).all()
        by_position: dict[int, list[Any]] = {}
        for row in rows:
            by_position.setdefault(row.position, []).append(row)
        positions = list(by_position)
        complete = positions[:-1] if len(rows) == limit else positions  # the last may lack its second row
        page = complete[:page_size]
        more = len(rows) == limit or len(complete) > page_size
        changes = [c for p in page if (c := _change(by_position[p], from_version)) is not None]
        next_token = codec.encode([page[-1]], binding) if more and page else ""
        return Diff(changes, next_token, from_version, to_version)


_VISIBLE_A, _VISIBLE_B = visible_at(_P("b_a")), visible_at(_P("b_b"))
_DIFF = (
    sa.select(R.c.position, R.c.valid_from, R.c.valid_to, R.c.dataset_record_id, R.c.content_hash, R.c.proto)
    .where(
        R.c.dataset_id == _P("b_id"),
        R.c.position > _P("b_after"),
        sa.or_(sa.and_(_VISIBLE_A, sa.not_(_VISIBLE_B)), sa.and_(_VISIBLE_B, sa.not_(_VISIBLE_A))),
    )
    .order_by(R.c.position, R.c.valid_from)
    .limit(_P("b_limit"))
)


def _change(rows: Sequence[Any], from_version: int) -> RecordChange | None:
    before = next((r for r in rows if _visible(r, from_version)), None)
    after = next((r for r in rows if r is not before), None)
    if before is None and after is not None:
        return RecordChange(ADDED, after.dataset_record_id, None, bytes(after.proto))
    if after is None and before is not None:
        return RecordChange(REMOVED, before.dataset_record_id, bytes(before.proto), None)
    assert before is not None and after is not None
    if before.content_hash == after.content_hash:
        return None
    return RecordChange(CHANGED, after.dataset_record_id, bytes(before.proto), bytes(after.proto))


def _visible(row: Any, version: int) -> bool:
    return bool(row.valid_from <= version and (row.valid_to is None or row.valid_to > version))


def _version(row: Any) -> DatasetVersion:
    return DatasetVersion(
        dataset_id=row.dataset_id,
        version=row.version,
        digest=row.digest,
        create_time_ms=row.create_time,
        created_by=row.created_by,
        added=row.added_count,
        updated=row.updated_count,
        deleted=row.deleted_count,
        num_records=row.num_records,
    )
