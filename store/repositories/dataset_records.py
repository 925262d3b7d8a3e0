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
fetches the current rows of the call's identities (one index seek per identity on PostgreSQL,
whatever the statistics say: see ``_lookup_rows``); a row whose content hash is the one its
request record would create comes without its content and proto (the record is UNCHANGED and
nothing of it needs parsing). The rules run in Python (``store/dataset_merge.py``); then a
constant number of statements write the result: one UPDATE closing the changed rows (by
``ctid`` on PostgreSQL: a TID scan), one binary COPY of all new row versions (``insert_rows``),
the field aggregates (``dataset_fields.py``), the version row and the dataset row. The new
rows are built while PostgreSQL runs the UPDATE, the field upkeep while it stores the COPY
(``meanwhile``: ``store/query/pg_exec.py``, ``store/query/bulk.py``). The lock
serializes merges into one dataset across server processes (no lost update, no duplicate
identity); the unique partial index on (dataset_id, input_hash) of current rows makes the
database enforce one current record per inputs whatever happens.

``MLGENAI_DATASET_STATS=off`` in the server's environment skips the schema/profile upkeep
(benchmark switch: ``bench/dataset_ops.py`` measures merges with and without it; schema and
profile then go stale).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from store.canonical import dumps, normalize, sha256_hex
from store.dataset_domain import DeleteResult, MergeResult, RecordCodec, RecordInput, TraceSource
from store.dataset_merge import HASH_MOD, Finished, MergePlan, Stored, fresh_content
from store.dataset_stats import ProfileDelta
from store.orm.base import table
from store.orm.datasets import DatasetRecordRow, DatasetRow, DatasetVersionRow
from store.orm.traces import AssessmentRow, SpanRow, TraceRow
from store.query.bulk import insert_rows
from store.query.raw import in_list, json_value, list_param
from store.repositories.assessments import EXPECTATION
from store.repositories.dataset_fields import FieldUpdate
from store.repositories.dataset_sql import (
    Tid,
    fetch_binary,
    json_param,
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


def _nothing() -> None:
    return None


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
        fresh = [(c, sha256_hex(c)) for c in (fresh_content(r, t) for r, t in zip(records, texts, strict=True))]
        # The content hash that makes a stored record's content unnecessary: its one record's
        # fresh content's ("": the identity comes more than once, fetch it).
        expected: dict[str, str] = {}
        for h, (_, content_hash) in zip(hashes, fresh, strict=True):
            expected[h] = "" if h in expected else content_hash
        plan = MergePlan(dataset_id, self._current(dataset_id, expected), ds.last_position, now_ms)
        results = [plan.add(*args) for args in zip(records, hashes, texts, fresh, strict=True)]
        version, num_records, digest = ds.version, ds.num_records, None
        if any(w.touched for w in plan.works.values()):
            done = plan.finish(ds.version + 1)
            if done.writes:
                version, num_records = ds.version + 1, ds.num_records + done.added
                # The rows are built while PostgreSQL closes the rows they replace.
                self._close(
                    dataset_id, done.close_rows, version, meanwhile=partial(plan.build, done, codec, stats_enabled())
                )
                fields = self._fields(dataset_id, ds, done)
                # The fields' upkeep is computed while PostgreSQL ingests the rows.
                insert_rows(self._uow, R, ROW_COLUMNS, done.rows, meanwhile=fields.compute if fields else None)
                digest = self._new_version(dataset_id, ds, done, plan.position, now_ms, fields=fields)
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
        rows = self._lookup(_rows_by_record_id(self._dialect), dataset_id, sorted(set(record_ids)))
        if not rows:
            return DeleteResult(0, ds.version)
        done = Finished([r.row_id for r in rows], [], ProfileDelta(), 0, 0, 0, None)
        for _, _, content_hash, text in rows:
            done.sum_delta -= int(content_hash, 16)
            if stats_enabled():
                content = loads(text)
                for section, key in _SECTIONS:
                    if key in content:
                        done.delta.remove(section, content[key])
        done.sum_delta %= HASH_MOD
        self._close(dataset_id, done.close_rows, ds.version + 1)
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

    def _current(self, dataset_id: str, expected: dict[str, str]) -> dict[str, Stored]:
        """The current rows of the identities ``expected`` maps to a content hash, by identity;
        a row with that content hash comes without its content and proto (None)."""
        keys = sorted(expected)
        params = {"b_id": dataset_id, "b_keys": list_param(self._dialect, keys)}
        if self._dialect == "postgresql":
            params["b_expected"] = [expected[k] for k in keys]
            rows = self._seek(_current_rows(self._dialect), params)
        else:
            rows = self._uow.fetch(_current_rows(self._dialect), params)
        out = {}
        for row in rows:
            text, content_hash = row.content, row.content_hash
            content = None if text is None or content_hash == expected[row.input_hash] else loads(text)
            out[row.input_hash] = Stored(
                row.row_id, row.position, row.dataset_record_id, content_hash, content,
                row.create_time, row.created_by, row.last_updated_by, row.proto,
            )  # fmt: skip
        return out

    def _lookup(self, stmt: Any, dataset_id: str, keys: list[str]) -> list[Any]:
        params = {"b_id": dataset_id, "b_keys": list_param(self._dialect, keys)}
        if self._dialect == "postgresql":
            return self._seek(stmt, params)
        return self._uow.fetch(stmt, params)

    def _seek(self, stmt: Any, params: dict[str, Any]) -> list[Any]:
        """PostgreSQL: run a ``_lookup_rows`` statement with sorts disabled for its planning, so
        that statistics that put no row at or above the dataset id (see ``_lookup_rows``) cannot
        make a sort of the dataset's rows per key look cheap (measured: 3.6 s for 1,000 keys)."""
        self._conn.exec_driver_sql("SET LOCAL enable_sort = off")  # (a failed statement rolls it back)
        rows = fetch_binary(self._uow, stmt, params)[0]
        self._conn.exec_driver_sql("RESET enable_sort")
        return rows

    def _close(
        self, dataset_id: str, rows: list[Any], version: int, meanwhile: Callable[[], object] = _nothing
    ) -> None:
        """Close the current rows ``rows`` (their ``row_id``s, see ``_lookup_rows``) as of
        ``version``; ``meanwhile``: work without the database, run (once) while PostgreSQL
        closes them."""
        if not rows or self._dialect != "postgresql":
            meanwhile()
        if not rows:
            return
        if self._dialect == "postgresql":
            params = {"b_rows": rows, "b_version": version}
            closed = fetch_binary(self._uow, _CLOSE_BY_TID, params, meanwhile=meanwhile)[1]
            if closed != len(rows):  # cannot happen under the dataset lock
                raise RuntimeError(f"closed {closed} rows of dataset {dataset_id!r}, not {len(rows)}")
            return
        params = {"b_id": dataset_id, "b_version": version, "b_positions": list_param(self._dialect, sorted(rows))}
        self._uow.fetch(_close_rows(self._dialect), params)

    def _fields(self, dataset_id: str, ds: Any, done: Finished) -> FieldUpdate | None:
        """The field upkeep of this change, its stored aggregates loaded (None when it is off)."""
        if not stats_enabled():
            return None
        return self._uow.dataset_fields.load(dataset_id, done.delta, _summary(ds))

    def _new_version(
        self,
        dataset_id: str,
        ds: Any,
        done: Finished,
        last_position: int,
        now_ms: int,
        deleted: int = 0,
        fields: FieldUpdate | None = None,
    ) -> str:
        """Fields, the version row and the dataset row of version ``ds.version + 1``; its digest.
        ``fields``: the upkeep as ``_fields`` made it (made here when not given)."""
        version = ds.version + 1
        fields = fields or self._fields(dataset_id, ds, done)
        summary = _summary(ds) if fields is None else fields.summary
        if fields is not None:
            self._uow.dataset_fields.save(fields)
        num_records = ds.num_records + done.added - deleted
        content_sum = (int(ds.content_sum, 16) + done.sum_delta) % HASH_MOD
        digest = digest_of(num_records, content_sum)
        self._uow.fetch(
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


def _summary(ds: Any) -> dict[str, Any]:
    """A copy of the dataset row's field summary (``DatasetRepository.lock``'s row)."""
    return dict(json_value(ds.field_summary) or {})


def _lookup_rows(dialect: str, key: Any, columns: tuple[Any, ...], unless: tuple[Any, ...] = ()) -> Any:
    """The current rows of one dataset (``b_id``) whose ``key`` is in the list ``b_keys``, with
    ``row_id``: the handle ``_close`` takes (``ctid`` on PostgreSQL, ``position`` on SQLite).

    PostgreSQL: one index seek per key. The plain ``key = ANY(keys)`` leaves the plan to the
    statistics, and a table not analyzed since a dataset grew (a new dataset, autovacuum
    behind or off) puts the dataset's current rows at a few dozen: the planner then reads all
    of them and filters (measured: 130 ms for 1,000 keys in a dataset of 100,000 records). An
    equality probe per key (``JOIN LATERAL (… key = k LIMIT 1)``) is no better: with such
    estimates every index on ``dataset_id`` looks as good as the unique one, and the smaller
    ``(dataset_id, position)`` index wins (measured: 1 s). So each key is a seek in key order,
    ``(dataset_id, key) >= (id, k) ORDER BY dataset_id, key LIMIT 1``, kept when it lands on
    ``(id, k)``: only the index on ``(dataset_id, key)`` serves that order, any other plan
    sorts a third of the table by the default estimates. Statistics that put no row at or above
    the dataset id (a new dataset with the highest id) make that sort look cheap too (seen in
    the benchmark: a sort of the dataset's rows per key), so the statement runs with
    ``enable_sort`` off (``DatasetRecordWriter._seek``).

    ``unless``: columns (of ``columns``) returned as NULL when the row's ``content_hash`` is the
    one given with its key (PostgreSQL: list ``b_expected``, in the order of ``b_keys``), so
    that an unchanged record's content does not travel.
    """
    current = (R.c.dataset_id == _P("b_id"), R.c.valid_to.is_(None))
    if dialect != "postgresql":
        return sa.select(R.c.position.label("row_id"), *columns).where(*current, in_list(dialect, key, "b_keys"))
    arrays = [sa.cast(_P(name), postgresql.ARRAY(sa.Text)) for name in ("b_keys", "b_expected")[: 1 + bool(unless)]]
    keys = sa.func.unnest(*arrays).table_valued(*("k", "h")[: len(arrays)]).render_derived("keys")
    row_id = sa.cast(sa.literal_column("ctid"), sa.Text).label("row_id")
    found = (
        sa.select(row_id, R.c.dataset_id.label("seek_dataset_id"), key.label("seek_key"), *columns)
        .where(sa.tuple_(R.c.dataset_id, key) >= sa.tuple_(_P("b_id"), keys.c.k), R.c.valid_to.is_(None))
        .order_by(R.c.dataset_id, key)
        .limit(1)
        .lateral("found")
    )
    hidden = {c.name for c in unless}
    wanted = [found.c.row_id] + [
        sa.case((found.c.content_hash == keys.c.h, sa.null()), else_=found.c[c.name]).label(c.name)
        if c.name in hidden
        else found.c[c.name]
        for c in columns
    ]
    return (
        sa.select(*wanted)
        .select_from(keys.join(found, sa.true()))
        .where(found.c.seek_dataset_id == _P("b_id"), found.c.seek_key == keys.c.k)
    )


@cache
def _current_rows(dialect: str) -> Any:
    columns = (
        R.c.position, R.c.dataset_record_id, R.c.input_hash, R.c.content_hash, R.c.content,
        R.c.create_time, R.c.created_by, R.c.last_updated_by, R.c.proto,
    )  # fmt: skip
    return _lookup_rows(dialect, R.c.input_hash, columns, unless=(R.c.content, R.c.proto))


@cache
def _rows_by_record_id(dialect: str) -> Any:
    return _lookup_rows(dialect, R.c.dataset_record_id, (R.c.position, R.c.content_hash, R.c.content))


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


# PostgreSQL: close rows by ctid (a TID scan, whatever the statistics; see ``_lookup_rows``). The
# ctids come from ``_lookup_rows`` in the same transaction, under the dataset lock: no other
# writer can have moved those rows since (every write into a dataset's records takes the lock).
_CLOSE_BY_TID = (
    sa.update(R)
    .where(sa.literal_column("ctid") == sa.any_(sa.cast(_P("b_rows"), postgresql.ARRAY(Tid()))))
    .values(valid_to=_P("b_version", type_=sa.BigInteger))
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
