"""Set-based bulk writes on both backends.

PostgreSQL: one ``INSERT … SELECT … FROM unnest(:col1, :col2, …)`` statement with one array
parameter per column, compiled once — a batch of rows costs one round trip and no per-row
Python in the driver (psycopg's pipelined ``executemany`` cost more CPU than the rest of a
small write). The arrays travel in psycopg's binary format (``%(b_col)b``): in the text format
psycopg quotes every element of a text array with a regular expression, ~60 µs for a 1 KB JSON
span payload against ~1.5 µs in binary — most of LogSpans' driver CPU. A single row (one
CreateAssessment, one request id) goes as ``INSERT … VALUES`` instead: building and dumping an
array per column cost ~10 µs a column, ~190 µs for an assessment's 19, against ~2 µs a plain
parameter.
SQLite: ``executemany`` of the single-row statement (in-process, cheap).

``upsert`` adds ``ON CONFLICT (keys) DO UPDATE`` (or ``DO NOTHING``). Callers pass rows
sorted by key and without duplicate keys: PostgreSQL refuses to update one row twice in a
statement, and a stable lock order is what keeps concurrent writers free of deadlocks.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from psycopg import errors, generators, pq
from psycopg.copy import LibpqWriter
from psycopg.waiting import Wait
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect

from store.query.raw import RawStatement, compile_raw

try:  # store/_pgcopy.c, built by `make install` (optional: psycopg's write_row does the same)
    from store import _pgcopy  # type: ignore[attr-defined]
except ImportError:  # a machine without a C compiler
    _pgcopy = None

if TYPE_CHECKING:
    from store.uow import UnitOfWork

_PG_ARRAY_TYPES: dict[type, Any] = {
    sa.String: sa.Text,
    sa.Text: sa.Text,
    sa.BigInteger: sa.BigInteger,
    sa.Integer: sa.BigInteger,
    sa.Float: sa.Float,
    sa.Boolean: sa.Boolean,
    sa.LargeBinary: postgresql.BYTEA,
}


@dataclass(frozen=True)
class BulkWrite:
    """An INSERT of ``columns`` into ``table`` with an optional conflict clause."""

    table: sa.Table
    columns: tuple[str, ...]
    conflict_keys: tuple[str, ...] = ()
    update_columns: tuple[str, ...] = ()  # empty with conflict keys: DO NOTHING
    returning: tuple[Any, ...] = ()  # PostgreSQL: what to return of each row written (RETURNING)

    def run(self, uow: UnitOfWork, rows: Sequence[Sequence[Any]]) -> list[Any]:
        """Write ``rows`` (tuples in ``columns`` order). With ``returning``, PostgreSQL returns
        each row written (not those a conflict left alone) as a named tuple; SQLite returns no
        rows (its ``executemany`` cannot), so callers look them up there."""
        if not rows:
            return []
        if uow.dialect == "postgresql":
            if len(rows) == 1:
                row = dict(zip(self.names, rows[0], strict=True))
                return uow.fetch_raw(_pg_single_row(self, uow.conn.dialect), row)
            arrays = {name: [row[i] for row in rows] for i, name in enumerate(self.names)}
            return uow.fetch_raw(_pg_binary(self, uow.conn.dialect), arrays)
        uow.fetch_many(_sqlite_statement(self), [dict(zip(self.names, row, strict=True)) for row in rows])
        return []

    @property
    def names(self) -> tuple[str, ...]:
        """The statement's parameter names, in ``columns`` order."""
        return _names(self.columns)


def _element_type(column: sa.Column[Any]) -> Any:
    if isinstance(column.type, (sa.JSON, postgresql.JSONB)):
        return sa.Text  # sent as JSON text, cast per element
    for kind, element in _PG_ARRAY_TYPES.items():
        if isinstance(column.type, kind):
            return element
    raise TypeError(f"no array type for {column}")


def _conflict(stmt: Any, write: BulkWrite) -> Any:
    if not write.conflict_keys:
        return stmt
    if not write.update_columns:
        return stmt.on_conflict_do_nothing(index_elements=list(write.conflict_keys))
    return stmt.on_conflict_do_update(
        index_elements=list(write.conflict_keys),
        set_={c: stmt.excluded[c] for c in write.update_columns},
    )


def _pg_conflict(stmt: Any, write: BulkWrite) -> Any:
    """The conflict clause, then ``RETURNING`` (PostgreSQL)."""
    stmt = _conflict(stmt, write)
    return stmt.returning(*write.returning) if write.returning else stmt


@cache
def _names(columns: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(f"b_{c}" for c in columns)


@cache
def _pg_single_row(write: BulkWrite, dialect: Dialect) -> RawStatement:
    """``INSERT … VALUES`` of one row, JSON columns cast from their text, bytea in binary."""
    values = {}
    for name in write.columns:
        param: Any = sa.bindparam(f"b_{name}")
        is_json = isinstance(write.table.c[name].type, (sa.JSON, postgresql.JSONB))
        values[name] = sa.cast(param, postgresql.JSONB) if is_json else param
    raw = compile_raw(_pg_conflict(postgresql.insert(write.table).values(values), write), dialect)
    return dataclasses.replace(raw, sql=re.sub(r"%\((b_\w+)\)s", _binary_bytes(write), raw.sql))


def _binary_bytes(write: BulkWrite) -> Any:
    """A placeholder rewriter sending ``bytea`` columns in binary (``%(b_x)b``)."""
    binary = {f"b_{c}" for c in write.columns if isinstance(write.table.c[c].type, sa.LargeBinary)}

    def rewrite(m: re.Match[str]) -> str:
        return f"%({m.group(1)})b" if m.group(1) in binary else m.group(0)

    return rewrite


@cache
def _pg_statement(write: BulkWrite) -> Any:
    columns = [write.table.c[c] for c in write.columns]
    arrays = [sa.cast(sa.bindparam(f"b_{c.name}"), postgresql.ARRAY(_element_type(c))) for c in columns]
    rows = sa.func.unnest(*arrays).table_valued(*(f"v_{c.name}" for c in columns)).render_derived()
    values = [
        sa.cast(rows.c[f"v_{c.name}"], postgresql.JSONB)
        if isinstance(c.type, (sa.JSON, postgresql.JSONB))
        else rows.c[f"v_{c.name}"]
        for c in columns
    ]
    stmt = postgresql.insert(write.table).from_select(list(write.columns), sa.select(*values))
    return _pg_conflict(stmt, write)


@dataclass(frozen=True)
class BulkUpdate:
    """``UPDATE table SET columns … WHERE key = …`` for many rows in one statement.

    PostgreSQL: ``UPDATE … FROM unnest(…)`` with binary array parameters; SQLite: ``executemany``.
    Rows are tuples ``(key, *columns)``, sorted by key (the lock order of concurrent writers).
    """

    table: sa.Table
    key: str
    columns: tuple[str, ...]

    def run(self, uow: UnitOfWork, rows: Sequence[Sequence[Any]]) -> None:
        if not rows:
            return
        names = (self.key, *self.columns)
        if uow.dialect == "postgresql":
            arrays = {f"b_{c}": [row[i] for row in rows] for i, c in enumerate(names)}
            uow.fetch_raw(_pg_binary(self, uow.conn.dialect), arrays)
        else:
            uow.fetch_many(
                _sqlite_statement(self), [dict(zip((f"b_{c}" for c in names), row, strict=True)) for row in rows]
            )


@cache
def _pg_binary(write: BulkWrite | BulkUpdate, dialect: Dialect) -> RawStatement:
    """The statement's SQL with binary-format placeholders (its parameters are all ours: ``b_*``)."""
    raw = compile_raw(_pg_statement(write) if isinstance(write, BulkWrite) else _pg_update(write), dialect)
    return dataclasses.replace(raw, sql=re.sub(r"%\((b_\w+)\)s", r"%(\1)b", raw.sql))


@cache
def _pg_update(update: BulkUpdate) -> Any:
    columns = [update.table.c[c] for c in (update.key, *update.columns)]
    arrays = [sa.cast(sa.bindparam(f"b_{c.name}"), postgresql.ARRAY(_element_type(c))) for c in columns]
    rows = sa.func.unnest(*arrays).table_valued(*(f"v_{c.name}" for c in columns)).render_derived()
    return (
        sa.update(update.table)
        .where(update.table.c[update.key] == rows.c[f"v_{update.key}"])
        .values({c: rows.c[f"v_{c}"] for c in update.columns})
    )


@cache
def _sqlite_statement(write: BulkWrite | BulkUpdate) -> Any:
    if isinstance(write, BulkUpdate):
        return (
            sa.update(write.table)
            .where(write.table.c[write.key] == sa.bindparam(f"b_{write.key}"))
            .values({c: sa.bindparam(f"b_{c}") for c in write.columns})
        )
    stmt = sqlite.insert(write.table).values({c: sa.bindparam(f"b_{c}") for c in write.columns})
    return _conflict(stmt, write)


def insert_rows(
    uow: UnitOfWork,
    table: sa.Table,
    columns: tuple[str, ...],
    rows: Sequence[Sequence[Any]],
    meanwhile: Callable[[], object] | None = None,
) -> None:
    """Insert new rows, which no stored row conflicts with: one binary COPY on PostgreSQL,
    ``BulkWrite`` (``executemany``) on SQLite. Rows are tuples in ``columns`` order, a JSON
    column's value its JSON text (as ``BulkWrite`` takes it).

    The COPY's stream is made in one pass by ``store._pgcopy`` (store/_pgcopy.c; without it,
    psycopg's ``write_row`` formats it a row at a time), where ``BulkWrite``'s array parameters
    are dumped element by element in Python (~0.4 s per 1,000 dataset records with their JSON
    and serialized protobuf; ~11% of an OTLP export's worker CPU for its spans: measured). The
    server also takes its multi-row insert path, and needs no speculative insertion as an
    ``ON CONFLICT`` does. ``bytea`` goes as it is (the text format would double it into hex);
    a JSON column goes in jsonb's binary form, a version byte then the text, which jsonb's
    binary input parses as it would the text. psycopg is told it is ``bytea`` (sent unchanged):
    in a binary COPY the server reads each field with its column's own binary input.

    ``meanwhile``: database-free work of the caller's, run while PostgreSQL stores the rows. A
    binary COPY buffers up to 1,000 rows before inserting any (its 64 KB limit counts text
    lines, which binary rows have none of), so a merge of 1,000 dataset records spent
    ~7-10 ms awaiting the COPY's end after ~0.7 ms of sending it. ``_EndThen`` sends the end
    of the data, runs ``meanwhile``, then awaits the result (SQLite: ``meanwhile`` runs after
    the rows).
    """
    if uow.dialect != "postgresql" or not rows:
        if rows:
            BulkWrite(table, columns).run(uow, rows)
        if meanwhile is not None:
            meanwhile()
        return
    types, json_at, kinds = _copy_types(table, columns)
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
    # The whole stream is made before the COPY starts: a value of the wrong type raises with
    # nothing sent.
    data: bytes | None = _pgcopy.copy_binary(rows, kinds) if _pgcopy is not None else None
    dbapi_conn: Any = uow.conn.connection.dbapi_connection
    with uow._driver_errors(sql, dbapi_conn), dbapi_conn.cursor() as cursor:
        writer = _EndThen(cursor, meanwhile) if meanwhile is not None else None
        with cursor.copy(sql, writer=writer) as copy:
            if data is not None:
                copy.write(data)
            else:
                _write_rows(copy, types, json_at, rows)
        if writer is not None and writer.failed is not None:
            raise writer.failed


def _write_rows(copy: Any, types: list[str], json_at: tuple[int, ...], rows: Sequence[Sequence[Any]]) -> None:
    """The rows through psycopg's ``write_row`` (without ``store._pgcopy``)."""
    copy.set_types(types)
    write = copy.write_row
    if not json_at:
        for row in rows:
            write(row)
        return
    for row in rows:
        values = list(row)
        for i in json_at:
            if values[i] is not None:
                values[i] = _JSONB_VERSION + values[i].encode()
        write(values)


class _EndThen(LibpqWriter):
    """psycopg's COPY writer, but its end sends the end-of-data message, runs ``meanwhile``
    while the server finishes the COPY, then reads the result. An exception of ``meanwhile``
    is kept in ``failed`` (raised once the result is read: the connection stays in step)."""

    def __init__(self, cursor: Any, meanwhile: Callable[[], object]) -> None:
        super().__init__(cursor)
        self._meanwhile = meanwhile
        self.failed: BaseException | None = None

    def finish(self, exc: BaseException | None = None) -> None:
        if exc is not None:
            super().finish(exc)
            return
        result = self.connection.wait(self._end())
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise errors.error_from_result(result, encoding=self.connection.info.encoding)
        self.cursor._results = [result]  # as psycopg's own writer leaves it (the cursor's rowcount)

    def _end(self) -> Any:
        """A psycopg generator (it yields what to wait for, is sent whether it is ready)."""
        pgconn = self._pgconn
        while pgconn.put_copy_end(None) == 0:
            while not (yield Wait.W):
                continue
        while True:
            while not (yield Wait.W):
                continue
            if pgconn.flush() == 0:
                break
        try:
            self._meanwhile()
        except BaseException as exc:  # read the result first, then raise it (insert_rows)
            self.failed = exc
        results = yield from generators.fetch_many(pgconn)  # (as pg_exec.run reads its result)
        return results[-1]


_JSONB_VERSION = b"\x01"  # the one version of jsonb's binary format


@cache
def _copy_types(table: sa.Table, columns: tuple[str, ...]) -> tuple[list[str], tuple[int, ...], str]:
    """The type names psycopg dumps ``columns`` as in a binary COPY, the JSON columns' positions,
    and the columns' kinds for ``copy_binary`` (a letter each)."""
    names, json_at, kinds = [], [], []
    for i, name in enumerate(columns):
        kind = table.c[name].type
        if isinstance(kind, (sa.JSON, postgresql.JSONB)):
            names.append("bytea")  # jsonb's binary form, built by insert_rows
            json_at.append(i)
            kinds.append("j")
        elif isinstance(kind, sa.LargeBinary):
            names.append("bytea")
            kinds.append("b")
        elif isinstance(kind, sa.BigInteger):
            names.append("int8")
            kinds.append("q")
        elif isinstance(kind, sa.Integer):
            names.append("int4")
            kinds.append("i")
        elif isinstance(kind, sa.Boolean):
            names.append("bool")
            kinds.append("B")
        elif isinstance(kind, (sa.String, sa.Text)):
            names.append("text")  # varchar has text's binary format
            kinds.append("t")
        else:
            raise TypeError(f"no COPY type for {table.c[name]}")
    return names, tuple(json_at), "".join(kinds)
