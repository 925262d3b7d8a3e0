"""Per-field aggregates of a dataset's current records (SPEC §5.4), updated by every change.

A merge or delete hands over a ``ProfileDelta`` (the field values it added and removed). This
module loads the stored aggregates of just the fields the delta touches (one SELECT), applies
it (``store/dataset_stats.py``), writes the changed rows back (one upsert, plus a DELETE per
part for fields no current record has any more) and refreshes their entries in the dataset's
summary. The cost follows the size of the change, except in one case: when the last value
holding a field's minimum or maximum goes, that field's extremes are recomputed from the
current records (two aggregate queries over all such fields at once, through the JSON path
operators of each backend).
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql

from store import dataset_stats
from store.dataset_stats import SECTIONS, FieldStats, Key, ProfileDelta, split_path
from store.engine import json_text
from store.orm.base import table
from store.orm.datasets import DatasetFieldRow, DatasetRecordRow
from store.query.bulk import BulkWrite
from store.query.raw import in_list, json_value, list_param
from store.repositories.dataset_sql import loads

if TYPE_CHECKING:
    from store.uow import UnitOfWork

F = table(DatasetFieldRow)
R = table(DatasetRecordRow)
_KEY_OF = {"inputs": "i", "outputs": "o", "expectations": "e"}  # the parts in records' content
_UPSERT = BulkWrite(F, ("dataset_id", "section", "path", "stats"), ("dataset_id", "section", "path"), ("stats",))
# The stored aggregates of some of a dataset's paths, built once per backend (run on the
# driver's cursor: built per call, it cost as much CPU as the rest of the load).
_LOAD = {
    dialect: sa.select(F.c.section, F.c.path, F.c.stats).where(
        F.c.dataset_id == sa.bindparam("b_id"), in_list(dialect, F.c.path, "b_paths")
    )
    for dialect in ("postgresql", "sqlite")
}


def _dumps(doc: dict[str, Any]) -> str:
    """A field's stored document: plain JSON (no canonical form needed; an integer sum beyond
    64 bits falls back to ``json``)."""
    return json_text(doc)


class FieldUpdate:
    """One call's change to a dataset's field aggregates, in three steps: ``DatasetFieldStore.load``
    reads the stored aggregates of the fields ``delta`` touches; ``compute`` applies the delta
    to them and to ``summary`` (the dataset's, in place) without the database, so that
    MergeRecords runs it while PostgreSQL ingests the COPY of its rows; ``DatasetFieldStore.save``
    recomputes stale extremes from the current records, writes the fields back and refreshes
    their entries in ``summary``."""

    def __init__(self, dataset_id: str, delta: ProfileDelta, stats: dict[Key, FieldStats], summary: dict[str, Any]):
        self.dataset_id = dataset_id
        self.delta = delta
        self.stats = stats
        self.summary = summary
        self.touched: set[Key] = set()
        self.stale: list[Key] = []
        self.rows: list[tuple[str, str, str, str]] | None = None  # the upsert's, once computed
        self._computed = False

    def compute(self) -> None:
        if self._computed:
            return
        self._computed = True
        self.touched, self.stale = dataset_stats.apply(self.delta, self.stats, self.summary)
        if not self.stale:  # (stale fields are written after their recomputation)
            self.rows = self.upsert_rows()

    def upsert_rows(self) -> list[tuple[str, str, str, str]]:
        """The rows of the fields that still have values, as ``compute`` left them (or as of now)."""
        if self.rows is not None:
            return self.rows
        stats = self.stats
        live = sorted(k for k in self.touched if stats[k].count)
        return [(self.dataset_id, s, p, _dumps(stats[(s, p)].doc())) for s, p in live]


class DatasetFieldStore:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    def apply(self, dataset_id: str, delta: ProfileDelta, summary: dict[str, Any]) -> None:
        """Apply ``delta`` to the stored aggregates and to ``summary`` (the dataset's, in place)."""
        self.save(self.load(dataset_id, delta, summary))

    def load(self, dataset_id: str, delta: ProfileDelta, summary: dict[str, Any]) -> FieldUpdate:
        keys = delta.keys()
        return FieldUpdate(dataset_id, delta, self._load(dataset_id, keys) if keys else {}, summary)

    def save(self, update: FieldUpdate) -> None:
        update.compute()
        dataset_id, stats, touched = update.dataset_id, update.stats, update.touched
        if update.stale:
            self._recompute(dataset_id, update.stale, stats)
        _UPSERT.run(self._uow, update.upsert_rows())
        for section in SECTIONS:
            gone = sorted(p for s, p in touched if s == section and not stats[(s, p)].count)
            if gone:
                self._conn.execute(
                    sa.delete(F).where(F.c.dataset_id == dataset_id, F.c.section == section, F.c.path.in_(gone))
                )
        dataset_stats.render_summary(update.summary, stats, touched)

    def _load(self, dataset_id: str, keys: set[Key]) -> dict[Key, FieldStats]:
        dialect = self._uow.dialect
        paths = sorted({p for _, p in keys})
        rows = self._uow.fetch(_LOAD[dialect], {"b_id": dataset_id, "b_paths": list_param(dialect, paths)})
        return {(s, p): FieldStats(json_value(doc)) for s, p, doc in rows if (s, p) in keys}

    def _recompute(self, dataset_id: str, stale: list[Key], stats: dict[Key, FieldStats]) -> None:
        """Recompute the extremes of ``stale`` fields (and their holder counts) from the current records."""
        probes: list[tuple[Key, str, ColumnElement[Any]]] = []
        for key in stale:
            exprs = _value_exprs(self._uow.dialect, key)
            if exprs is None:
                self._recompute_in_python(dataset_id, key, stats[key])
                continue
            if stats[key].numbers.stale:
                probes.append((key, "numbers", exprs[0]))
            if stats[key].lengths.stale:
                probes.append((key, "lengths", exprs[1]))
        if not probes:
            return
        current = sa.and_(R.c.dataset_id == dataset_id, R.c.valid_to.is_(None))
        extremes = [f(e) for _, _, e in probes for f in (sa.func.min, sa.func.max)]
        bounds = self._conn.execute(sa.select(*extremes).where(current)).one()
        counts = [
            sa.func.sum(sa.case((e == bounds[2 * i + j], 1), else_=0))
            for i, (_, _, e) in enumerate(probes)
            for j in (0, 1)
        ]
        holders = self._conn.execute(sa.select(*counts).where(current)).one()
        for i, (key, kind, _) in enumerate(probes):
            lo, hi = _number(bounds[2 * i]), _number(bounds[2 * i + 1])
            getattr(stats[key], kind).reset_extremes(lo, int(holders[2 * i] or 0), hi, int(holders[2 * i + 1] or 0))

    def _recompute_in_python(self, dataset_id: str, key: Key, field: FieldStats) -> None:
        """For the fields SQLite's JSON paths cannot address: scan the part's values here."""
        section, path = key
        keys = [_KEY_OF[section], *(split_path(path) if path else [])]
        numbers, lengths = [], []
        current = sa.select(R.c.content).where(R.c.dataset_id == dataset_id, R.c.valid_to.is_(None))
        for (text,) in self._conn.execute(current):
            value = loads(text)
            for k in keys:
                value = value.get(k) if isinstance(value, dict) else None
            kind = dataset_stats.json_type(value)
            if kind in ("integer", "number"):
                numbers.append(value)
            elif kind == "string":
                lengths.append(len(value))
        for extremes, values in ((field.numbers, numbers), (field.lengths, lengths)):
            if extremes.stale and values:
                lo, hi = min(values), max(values)
                extremes.reset_extremes(lo, values.count(lo), hi, values.count(hi))


def _number(value: Any) -> Any:
    return int(value) if isinstance(value, float) and value.is_integer() and abs(value) <= 2**53 else value


def _value_exprs(dialect: str, key: Key) -> tuple[ColumnElement[Any], ColumnElement[Any]] | None:
    """SQL for a field's value as a number (NULL unless a JSON number) and its string length
    (NULL unless a JSON string); None when the backend cannot address the field."""
    section, path = key
    keys = [_KEY_OF[section], *(split_path(path) if path else [])]
    if dialect == "postgresql":
        column: Any = sa.cast(R.c.content, postgresql.JSONB)
        at = sa.literal(keys, postgresql.ARRAY(sa.Text))
        text = column.op("#>>")(at)
        pg_kind = sa.func.jsonb_typeof(column.op("#>")(at))
        return (
            sa.case((pg_kind == "number", sa.cast(text, sa.Float))),
            sa.case((pg_kind == "string", sa.func.length(text))),
        )
    if any('"' in k for k in keys):
        return None  # SQLite's JSON paths cannot name a key containing '"'
    column = R.c.content
    where = "$" + "".join('."' + json.dumps(k, ensure_ascii=False)[1:-1] + '"' for k in keys)
    kind = sa.func.json_type(column, where)
    value = sa.func.json_extract(column, where)
    number = sa.case((kind.in_(("integer", "real")), value))
    return number, sa.case((kind == "text", sa.func.length(value)))
