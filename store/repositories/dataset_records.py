"""Writes into a dataset's records (SPEC §5.3, §5.5): MergeRecords, DeleteRecords, records from traces.

**Versions.** Each row of ``evaluation_dataset_records`` is one version of one record, valid
for dataset versions ``valid_from <= v < valid_to`` (``valid_to`` NULL: current). Rows are
never rewritten except to close them: a change closes the record's current row
(``valid_to = N+1``) and inserts its new content as a new row (copy-on-write); a delete only
closes it. Reading version N is ``valid_from <= N AND (valid_to IS NULL OR valid_to > N)``;
reading the current records goes through partial indexes on ``valid_to IS NULL`` and costs
what it would in an unversioned table. Each call that changes something makes exactly one
version N+1, with an ``evaluation_dataset_versions`` row (digest, time, author, counts); a call
that changes nothing writes nothing. Records keep their ``position`` (creation order) across
versions; a record deleted and merged again later is a new record.

**Merge, set-based.** Under the dataset row lock (``DatasetRepository.lock``), one SELECT
fetches the current rows of the call's identities; the rules run in Python
(``store/dataset_merge.py``); then a constant number of statements write the result: one
UPDATE closing the changed rows, one INSERT of all new row versions (``BulkWrite``), the field
aggregates (``dataset_fields.py``), the version row and the dataset row. The lock serializes
merges into one dataset across server processes (no lost update, no duplicate identity);
the unique partial index on (dataset_id, input_hash) of current rows makes the database
enforce one current record per inputs whatever happens.

``MLGENAI_DATASET_STATS=off`` in the server's environment skips the schema/profile upkeep
(benchmark switch: ``bench/dataset_ops.py`` measures merges with and without it; schema and
profile then go stale).
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.canonical import dumps, normalize, sha256_hex
from store.dataset_domain import DeleteResult, MergeResult, RecordCodec, RecordInput, TraceSource
from store.dataset_merge import HASH_MOD, Finished, MergePlan, Stored
from store.dataset_stats import ProfileDelta
from store.orm.base import table
from store.orm.datasets import DatasetRecordRow, DatasetRow, DatasetVersionRow
from store.orm.traces import AssessmentRow, SpanRow, TraceRow
from store.repositories.assessments import EXPECTATION
from store.repositories.dataset_sql import (
    in_list,
    insert_rows,
    json_param,
    json_value,
    list_param,
    loads,
)
from store.repositories.datasets import digest_of
from store.repositories.traces import trace_not_found

if TYPE_CHECKING:
    from store.uow import UnitOfWork

R = table(DatasetRecordRow)
D = table(DatasetRow)
V = table(DatasetVersionRow)
S = table(SpanRow)
TR = table(TraceRow)
A = table(AssessmentRow)
_P = sa.bindparam
STATS_SWITCH = "MLGENAI_DATASET_STATS"

ROW_COLUMNS = (
    "dataset_id", "position", "valid_from", "dataset_record_id", "input_hash", "content", "content_hash",
    "create_time", "update_time", "created_by", "last_updated_by", "proto",
)  # fmt: skip
_INSERT_VERSION = sa.insert(V).values({c.name: _P(c.name) for c in V.c})


def stats_enabled() -> bool:
    return os.environ.get(STATS_SWITCH, "on").lower() != "off"


class DatasetRecordWriter:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn
        self._dialect = uow.dialect

    def merge(self, dataset_id: str, records: Sequence[RecordInput], codec: RecordCodec, now_ms: int) -> MergeResult:
        """Merge ``records`` in order (see the module docstring and ``store/dataset_merge.py``)."""
        ds = self._uow.datasets.lock(dataset_id)
        texts = [dumps(r.inputs) for r in records]
        hashes = [sha256_hex(t) for t in texts]
        plan = MergePlan(dataset_id, self._current(dataset_id, sorted(set(hashes))), ds.last_position, now_ms)
        results = [plan.add(r, h, t) for r, h, t in zip(records, hashes, texts, strict=True)]
        version, num_records, digest = ds.version, ds.num_records, None
        if any(w.touched for w in plan.works.values()):
            done = plan.finish(codec, ds.version + 1, stats_enabled())
            if done.rows:
                version, num_records = ds.version + 1, ds.num_records + done.added
                self._close(dataset_id, done.close_positions, version)
                insert_rows(self._uow, R, ROW_COLUMNS, done.rows)
                digest = self._new_version(dataset_id, ds, done, plan.position, now_ms)
        outcomes = [o for _, o in results]
        return MergeResult(
            results=results,
            created=outcomes.count("CREATED"),
            updated=outcomes.count("UPDATED"),
            unchanged=outcomes.count("UNCHANGED"),
            version=version,
            digest=digest or ds.digest,
            num_records=num_records,
        )

    def delete(self, dataset_id: str, record_ids: Sequence[str], now_ms: int) -> DeleteResult:
        """Close the current rows of ``record_ids`` (unknown ids are ignored)."""
        ds = self._uow.datasets.lock(dataset_id)
        cols = (R.c.position, R.c.content_hash, R.c.content)
        stmt = sa.select(*cols).where(
            R.c.dataset_id == dataset_id,
            R.c.valid_to.is_(None),
            in_list(self._dialect, R.c.dataset_record_id, "b_ids"),
        )
        rows = self._conn.execute(stmt, {"b_ids": list_param(self._dialect, sorted(set(record_ids)))}).all()
        if not rows:
            return DeleteResult(0, ds.version)
        done = Finished([r[0] for r in rows], [], ProfileDelta(), 0, 0, 0, None)
        for _, content_hash, text in rows:
            done.sum_delta -= int(content_hash, 16)
            if stats_enabled():
                content = loads(text)
                for section, key in _SECTIONS:
                    if key in content:
                        done.delta.remove(section, content[key])
        done.sum_delta %= HASH_MOD
        self._close(dataset_id, done.close_positions, ds.version + 1)
        self._new_version(dataset_id, ds, done, ds.last_position, now_ms, deleted=len(rows))
        return DeleteResult(len(rows), ds.version + 1)

    def trace_sources(self, trace_ids: Sequence[str]) -> list[TraceSource]:
        """Root span inputs/outputs and valid expectations of each trace (NOT_FOUND if one is missing)."""
        ids = sorted(set(trace_ids))
        found = self._conn.execute(sa.select(TR.c.trace_id, TR.c.session_id).where(TR.c.trace_id.in_(ids)))
        sessions: dict[str, str | None] = {row[0]: row[1] for row in found}
        missing = [t for t in trace_ids if t not in sessions]
        if missing:
            raise trace_not_found(missing[0])
        roots: dict[str, Any] = {}
        root_stmt = (
            sa.select(S.c.trace_id, S.c.payload)
            .where(S.c.trace_id.in_(ids), S.c.parent_span_id.is_(None))
            .order_by(S.c.trace_id, S.c.start_time_unix_nano, S.c.span_id)
        )
        for trace_id, payload in self._conn.execute(root_stmt):
            roots.setdefault(trace_id, json_value(payload))
        expectations: dict[str, dict[str, Any]] = {t: {} for t in ids}
        exp_stmt = (
            sa.select(A.c.trace_id, A.c.name, A.c.value)
            .where(A.c.trace_id.in_(ids), A.c.kind == EXPECTATION, A.c.valid.is_(True))
            .order_by(A.c.trace_id, A.c.create_time, A.c.assessment_id)
        )
        for trace_id, name, value in self._conn.execute(exp_stmt):
            expectations[trace_id][name] = normalize(value)  # the newest of a name wins
        out = []
        for trace_id in trace_ids:
            root = roots.get(trace_id)
            inputs = normalize(root.get("inputs")) if root else None
            outputs = normalize(root.get("outputs")) if root else None
            out.append(TraceSource(trace_id, inputs, outputs, expectations[trace_id], sessions[trace_id]))
        return out

    # -- helpers -------------------------------------------------------------------------

    def _current(self, dataset_id: str, hashes: list[str]) -> dict[str, Stored]:
        """The current rows of these identities, by identity."""
        params = {"b_id": dataset_id, "b_hashes": list_param(self._dialect, hashes)}
        rows = self._uow.fetch(_current_rows(self._dialect), params)
        out = {}
        for row in rows:
            out[row.input_hash] = Stored(
                row.position, row.dataset_record_id, row.content_hash, loads(row.content), row.create_time,
                row.created_by, row.last_updated_by, row.proto,
            )  # fmt: skip
        return out

    def _close(self, dataset_id: str, positions: list[int], version: int) -> None:
        if positions:
            positions = list_param(self._dialect, sorted(positions))
            params = {"b_id": dataset_id, "b_version": version, "b_positions": positions}
            self._uow.fetch(_close_rows(self._dialect), params)

    def _new_version(
        self, dataset_id: str, ds: Any, done: Finished, last_position: int, now_ms: int, deleted: int = 0
    ) -> str:
        """Fields, the version row and the dataset row of version ``ds.version + 1``; its digest."""
        version = ds.version + 1
        summary = dict(json_value(ds.field_summary) or {})
        if stats_enabled():
            self._uow.dataset_fields.apply(dataset_id, done.delta, summary)
        num_records = ds.num_records + done.added - deleted
        content_sum = (int(ds.content_sum, 16) + done.sum_delta) % HASH_MOD
        digest = digest_of(num_records, content_sum)
        self._conn.execute(
            _INSERT_VERSION,
            {
                "dataset_id": dataset_id, "version": version, "digest": digest, "num_records": num_records,
                "added_count": done.added, "updated_count": done.updated, "deleted_count": deleted,
                "created_by": done.author, "create_time": now_ms,
            },
        )  # fmt: skip
        params = {
            "b_id": dataset_id, "b_version": version, "b_num": num_records, "b_last": last_position,
            "b_sum": f"{content_sum:064x}", "b_digest": digest, "b_summary": dumps(summary), "b_now": now_ms,
            "b_author": done.author,
        }  # fmt: skip
        self._uow.fetch(_update_dataset(self._dialect), params)
        return digest


_SECTIONS = (("inputs", "i"), ("outputs", "o"), ("expectations", "e"))


@cache
def _current_rows(dialect: str) -> Any:
    columns = (
        R.c.position, R.c.dataset_record_id, R.c.input_hash, R.c.content_hash, R.c.content,
        R.c.create_time, R.c.created_by, R.c.last_updated_by, R.c.proto,
    )  # fmt: skip
    current = (R.c.dataset_id == _P("b_id"), R.c.valid_to.is_(None))
    return sa.select(*columns).where(*current, in_list(dialect, R.c.input_hash, "b_hashes"))


@cache
def _close_rows(dialect: str) -> Any:
    return (
        sa.update(R)
        .where(
            R.c.dataset_id == _P("b_id"),
            R.c.valid_to.is_(None),
            in_list(dialect, R.c.position, "b_positions", sa.BigInteger),
        )
        .values(valid_to=_P("b_version"))
    )


@cache
def _update_dataset(dialect: str) -> Any:
    return (
        sa.update(D)
        .where(D.c.dataset_id == _P("b_id"))
        .values(
            version=_P("b_version"),
            num_records=_P("b_num"),
            last_position=_P("b_last"),
            content_sum=_P("b_sum"),
            digest=_P("b_digest"),
            field_summary=json_param(dialect, "b_summary"),
            update_time=_P("b_now"),
            last_updated_by=sa.func.coalesce(_P("b_author", type_=sa.Text), D.c.last_updated_by),
        )
    )
