"""PostgreSQL: run a compiled statement on libpq directly, prepared once per connection.

``UnitOfWork.fetch_raw`` runs most of the service's statements (every hot path compiles its
statements once, ``store/query/raw.py``). Through a psycopg cursor each one cost ~41 µs of
the server's CPU, of which libpq's own work (send, wait with the GIL released, receive) was
~17 µs; the rest is the cursor's per-execution machinery: query conversion, the prepare
manager, result bookkeeping. Here a statement costs ~19 µs (measured on a point SELECT by
key). Parameters are dumped and rows loaded by psycopg's own ``Transformer``, so values and
types are exactly what a cursor would send and return.

Per connection (kept on the psycopg connection, which one thread uses at a time):

* each distinct statement is prepared on first use, named ``_mg<n>`` (psycopg's own prepared
  statements are ``_pg3_<n>``), keyed by its SQL and its parameters' types as psycopg would
  (an integer that needs ``int8`` is another statement than one in ``int2``); at most
  ``PREPARED_MAX`` are kept, the oldest deallocated first. psycopg answers a ROLLBACK with
  DEALLOCATE ALL when it holds prepared statements of its own, which would drop ours too: the
  connections that roll back (writes) let psycopg prepare nothing (``store/engine.py``);
* a transaction is begun as psycopg begins one (its ``BEGIN`` with the connection's isolation
  level, read-only and deferrable settings) when the connection is not in autocommit and no
  transaction is open; commit and rollback stay psycopg's, which follow the server's
  transaction status. Measured and not kept: sending BEGIN with the first statement in one
  round trip (libpq's pipeline mode) saved ~100 µs of a lone write but cost ~25% more of the
  worker's CPU per call under the mixed load (psycopg sends a pipeline holding the
  interpreter lock, where ``exec_prepared`` releases it for its send and wait); committing
  with libpq's ``exec_`` instead of psycopg's commit gained in a loop of bare writes but lost
  ~7% in CreateAssessment at 16 callers (median of 10 alternated runs).

Errors are psycopg's exceptions built from the server's result (``UniqueViolation``…), so the
caller classifies them as it does a cursor's; a connection that broke reports ``closed``.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from psycopg import errors, generators, pq, waiting
from psycopg.adapt import PyFormat, Transformer

from store.query.raw import RawStatement

PREPARED_MAX = 256
_STATE = "_mlgenai_exec"
_PLACEHOLDER = re.compile(r"%%|%\((\w+)\)([sbt])")
_FORMATS = {"s": PyFormat.AUTO, "b": PyFormat.BINARY, "t": PyFormat.TEXT}
_IDLE = pq.TransactionStatus.IDLE
_TUPLES_OK = pq.ExecStatus.TUPLES_OK
_OK = frozenset((pq.ExecStatus.TUPLES_OK, pq.ExecStatus.COMMAND_OK))
_LIST = list


@dataclass(frozen=True)
class _Converted:
    """A statement's SQL with ``$n`` placeholders, its parameter names in order and formats."""

    sql: bytes
    names: tuple[str, ...]
    formats: tuple[PyFormat, ...]
    auto: bool  # some parameter's format is psycopg's choice (``%(name)s``)


_CONVERTED: dict[str, _Converted] = {}


def _convert(sql: str) -> _Converted:
    found = _CONVERTED.get(sql)
    if found is not None:
        return found
    names: list[str] = []
    formats: list[PyFormat] = []

    def placeholder(m: re.Match[str]) -> str:
        if m.group(0) == "%%":
            return "%"
        name = m.group(1)
        if name not in names:
            names.append(name)
            formats.append(_FORMATS[m.group(2)])
        return f"${names.index(name) + 1}"

    sql_bytes = _PLACEHOLDER.sub(placeholder, sql).encode()
    converted = _Converted(sql_bytes, tuple(names), tuple(formats), PyFormat.AUTO in formats)
    _CONVERTED[sql] = converted
    return converted


@dataclass
class _Connection:
    """What this module keeps on one psycopg connection."""

    tx: Any  # psycopg.adapt.Transformer (its name is a variable to mypy)
    prepared: dict[tuple[bytes, tuple[int, ...]], bytes] = field(default_factory=dict)
    made: int = 0


def _state(dbapi_conn: Any) -> _Connection:
    state: _Connection | None = getattr(dbapi_conn, _STATE, None)
    if state is None:
        state = _Connection(Transformer(dbapi_conn))
        setattr(dbapi_conn, _STATE, state)
    return state


def _begin_command(dbapi_conn: Any) -> bytes:
    """The ``BEGIN`` psycopg sends for this connection's settings."""
    parts = [b"BEGIN"]
    if dbapi_conn.isolation_level is not None:
        parts += [b"ISOLATION LEVEL", dbapi_conn.isolation_level.name.replace("_", " ").encode()]
    if dbapi_conn.read_only is not None:
        parts.append(b"READ ONLY" if dbapi_conn.read_only else b"READ WRITE")
    if dbapi_conn.deferrable is not None:
        parts.append(b"DEFERRABLE" if dbapi_conn.deferrable else b"NOT DEFERRABLE")
    return b" ".join(parts)


def _checked(dbapi_conn: Any, result: Any) -> Any:
    """``result``, or the error it reports raised as psycopg's exception for its SQLSTATE."""
    if result.status not in _OK:
        raise errors.error_from_result(result, encoding=dbapi_conn.info.encoding)
    return result


def fetch(dbapi_conn: Any, raw: RawStatement, params: dict[str, Any], binary: bool = False) -> list[Any]:
    """``raw``'s rows (as ``raw.row`` tuples; none when it returns no rows) for ``params``;
    ``binary``: results in binary format (``bytea`` as is, not as hex text)."""
    return run(dbapi_conn, raw, params, binary)[0]


def run(
    dbapi_conn: Any,
    raw: RawStatement,
    params: dict[str, Any],
    binary: bool = False,
    meanwhile: Callable[[], object] | None = None,
) -> tuple[list[Any], int]:
    """``fetch``, and the number of rows the statement returned or changed.

    ``meanwhile``: work without the database, run once the statement is sent and before its
    result is read, so that it overlaps the statement's execution in PostgreSQL. The result is
    read even when ``meanwhile`` raises (the connection stays usable), and then its error is
    raised."""
    pgconn = dbapi_conn.pgconn
    state = _state(dbapi_conn)
    if pgconn.transaction_status == _IDLE and not dbapi_conn.autocommit:
        _checked(dbapi_conn, pgconn.exec_(_begin_command(dbapi_conn)))
    converted = _convert(raw.sql)
    values = raw.parameters(params)
    tx = state.tx
    args = [values[name] for name in converted.names]
    formats = converted.formats
    if converted.auto and _LIST in map(type, args):  # lists travel in binary (``_binary_lists``)
        formats = _binary_lists(args, formats)
    dumped = tx.dump_sequence(args, formats)
    key = (converted.sql, tx.types)
    name = state.prepared.get(key)
    if name is None:
        name = _prepare(dbapi_conn, state, key)
    if meanwhile is None:
        result = _checked(dbapi_conn, pgconn.exec_prepared(name, dumped, tx.formats, 1 if binary else 0))
    else:
        pgconn.send_query_prepared(name, dumped, tx.formats, 1 if binary else 0)
        try:
            meanwhile()
        finally:  # (waits with the GIL released, as exec_prepared does)
            results = waiting.wait(generators.fetch_many(pgconn), pgconn.socket)
        for each in results:  # (one, for one statement)
            _checked(dbapi_conn, each)
        result = results[-1]
    if result.status != _TUPLES_OK:
        return [], int(result.command_tuples or 0)
    if raw.row is None:
        return [], result.ntuples
    tx.set_pgresult(result)
    rows: list[Any] = tx.load_rows(0, result.ntuples, raw.row._make)  # type: ignore[attr-defined]
    return rows, len(rows)


def _binary_lists(args: list[Any], formats: tuple[PyFormat, ...]) -> tuple[PyFormat, ...]:
    """``formats`` with every list argument in binary: psycopg dumps a list in the text format
    by quoting each element in Python, 15 µs for 12 ids and 113 µs for 100 (a page of
    SearchTraces, whose assessments are read by trace id), against 4.6 and 19 µs in binary.
    The value PostgreSQL receives is the same (a ``str`` list goes as ``text[]`` rather than
    ``unknown``, which the statements cast to their element type either way)."""
    return tuple(PyFormat.BINARY if type(a) is _LIST else f for a, f in zip(args, formats, strict=True))


def _prepare(dbapi_conn: Any, state: _Connection, key: tuple[bytes, tuple[int, ...]]) -> bytes:
    pgconn = dbapi_conn.pgconn
    if len(state.prepared) >= PREPARED_MAX:
        oldest = next(iter(state.prepared))
        _checked(dbapi_conn, pgconn.exec_(b"DEALLOCATE " + state.prepared.pop(oldest)))
    state.made += 1
    name = b"_mg%d" % state.made
    _checked(dbapi_conn, pgconn.prepare(name, key[0], key[1]))
    state.prepared[key] = name
    return name
