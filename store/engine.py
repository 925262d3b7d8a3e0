"""One engine factory for both backends.

``sqlite:///path`` (the embedded default) and ``postgresql+psycopg://…`` (production). A plain
``postgresql://`` or ``postgres://`` URL is taken to mean psycopg 3.

SQLite connections get, on every connect: ``foreign_keys=ON``, ``journal_mode=WAL``,
``synchronous=NORMAL`` (durable against a crash of the process, which is what §1.11 promises),
a ``busy_timeout``, case-sensitive ``LIKE`` (the filter language is case-sensitive on every
backend, §1.6) and a ``REGEXP`` function for ``RLIKE``. Write transactions start with
``BEGIN IMMEDIATE`` (see ``store/uow.py``) so two writers never deadlock on lock upgrade.
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from functools import lru_cache
from typing import Any

import orjson
import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import NullPool

SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | URL) -> URL:
    """Map ``postgres://``/``postgresql://`` to the psycopg 3 driver; reject other backends."""
    u = make_url(url)
    backend = u.get_backend_name()
    if backend in ("postgres", "postgresql"):
        return u.set(drivername="postgresql+psycopg")
    if backend == "sqlite":
        if u.drivername not in ("sqlite", "sqlite+pysqlite"):
            raise ValueError(f"unsupported SQLite driver {u.drivername!r}; use sqlite:///path")
        return u
    raise ValueError(f"unsupported database {backend!r}: use sqlite:///… or postgresql+psycopg://…")


@lru_cache(maxsize=256)
def _compiled(pattern: str) -> re.Pattern[str]:
    return re.compile(pattern)


def _regexp(pattern: str | None, value: Any) -> bool | None:
    if pattern is None or value is None:
        return None
    return _compiled(pattern).search(str(value)) is not None


def _on_sqlite_connect(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    # Let SQLAlchemy, not the driver, decide when transactions begin (see uow.py).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA case_sensitive_like=ON")
    cur.close()
    dbapi_conn.create_function("regexp", 2, _regexp, deterministic=True)


def _on_sqlite_begin(conn: sa.Connection) -> None:
    # ``sqlite_begin="IMMEDIATE"`` (set by write units of work) takes the write lock up front.
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.exec_driver_sql(f"BEGIN {mode}")


def json_text(value: Any) -> str:
    """Compact JSON text of a value for a JSON column: orjson (~5x faster than ``json.dumps``;
    1,000 assessments' values and metadata were 14% of a BatchCreateAssessments call), falling
    back to ``json`` for what orjson refuses (integers beyond 64 bits). Callers check values
    first: orjson would write NaN and infinities as null, which no stored value holds."""
    try:
        return orjson.dumps(value).decode()
    except orjson.JSONEncodeError:
        return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def json_loads(text: str | bytes) -> Any:
    """What psycopg parses json/jsonb results with: orjson (~5x faster than ``json.loads`` on
    the tags, metadata and assessments of a search page), falling back to ``json`` for what
    orjson refuses (integers beyond 64 bits, which jsonb can hold)."""
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str | URL, *, pool_size: int = 20, read_only: bool = False, echo: bool = False) -> Engine:
    """Create the engine for ``url`` with the settings this service relies on.

    ``read_only=True`` makes the engine for reads: every statement runs in autocommit (one round
    trip, no BEGIN/ROLLBACK; under READ COMMITTED a read transaction gave no extra consistency
    anyway) and the database refuses writes (PostgreSQL ``default_transaction_read_only``,
    SQLite ``query_only``), so a read path can never write by mistake.

    Ping after idleness, not on every checkout: a connection that sat in the pool longer than
    ``IDLE_PING_S`` is checked with a round trip before use (and replaced if the database
    dropped it, e.g. after a restart), so under load no call pays for a ping. A connection
    dropped while busy fails its statement, SQLAlchemy invalidates the pool, the call answers
    UNAVAILABLE and the client's retry gets a fresh connection.
    """
    u = normalize_url(url)
    if u.get_backend_name() == "sqlite":
        return _sqlite_engine(u, pool_size, read_only, echo)
    # psycopg 3 prepares a statement server-side after it has run ``prepare_threshold`` times.
    # PostgreSQL would then switch a prepared statement to a generic plan after five runs, which
    # for filter queries is far worse than the plan made for the actual values (measured: a tag
    # search went from 2.3 ms to 13.5 ms): reads (every search and filter runs on the read
    # engine) use force_custom_plan, which keeps the parse savings only. Writes run point
    # statements (by key, or over an array of ids), for which a generic plan is as good and
    # planning each execution was a third of PostgreSQL's CPU: they use force_generic_plan.
    # (``auto`` kept planning every statement whose generic estimate exceeds its custom ones,
    # though the plan is the same seek: a lookup by ``= ANY(ids)`` is estimated at 10 rows
    # generically and 1 for a one-id array, and the trace lock of CreateAssessment took
    # ~0.3 ms to plan on every call. Measured at 16 callers: CreateAssessment 572 -> 405 µs of
    # PostgreSQL CPU per call, ClaimNextItem + SubmitLabels 2.8 -> 2.4 ms per label.)
    # A generic plan is made once per connection and kept until the table is ANALYZEd: made
    # while a table is small (a new database, or autovacuum off), it scans the whole table, and
    # keeps scanning as the table grows (measured: LogSpans' trace lock and its name-tag check
    # were sequential scans of traces and trace_tags, 3-5 ms per call after 4,000 traces, and
    # growing). Writes therefore also set enable_seqscan=off: every write statement has an index
    # to seek (a scan remains possible where none applies; it is only costed last).
    # jit=off: the aggregations of GetRunResults/CompareRuns/QueryTraceMetrics cross the JIT
    # cost threshold, and compiling them took 2.5 s for a query that runs in 100 ms (measured on
    # CompareRuns over 60,000 assessments). Our queries are short; JIT never pays back here.
    # work_mem 32MB (default 4MB): the analytics aggregate tens of thousands of rows per call;
    # with 4MB their grouping and sorts spilled to disk (measured: CompareRuns over 60,000
    # assessments). It is a per-operation ceiling, not an allocation.
    plans = "force_custom_plan" if read_only else "force_generic_plan -c enable_seqscan=off"
    options = f"-c plan_cache_mode={plans} -c jit=off -c work_mem=32MB"
    if read_only:
        options += " -c default_transaction_read_only=on"
    # Statements run through ``UnitOfWork.fetch*`` are prepared by ``store/query/pg_exec.py``
    # on first use, outside psycopg. psycopg answers a ROLLBACK with DEALLOCATE ALL when it has
    # prepared statements of its own, which would drop those too: the write connections, whose
    # failed transactions roll back, let psycopg prepare nothing. (A read connection runs in
    # autocommit: psycopg never rolls one back, and keeps preparing what SQLAlchemy runs there.)
    threshold = 5 if read_only else None
    connect_args: dict[str, Any] = {"prepare_threshold": threshold, "connect_timeout": 10, "options": options}
    engine = sa.create_engine(
        u,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max(2, pool_size // 4),
        pool_timeout=10,
        # An autocommit connection has no transaction to roll back when it returns to the pool.
        pool_reset_on_return=None if read_only else "rollback",
        isolation_level="AUTOCOMMIT" if read_only else "READ COMMITTED",
        connect_args=connect_args,
        json_deserializer=json_loads,
    )
    sa.event.listen(engine, "checkout", _ping_if_idle)
    sa.event.listen(engine, "checkin", _note_checkin)
    return engine


IDLE_PING_S = 5.0


def _note_checkin(_dbapi_conn: Any, record: Any) -> None:
    record.info["checkin_at"] = time.monotonic()


def _ping_if_idle(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
    idle_since = record.info.get("checkin_at")
    if idle_since is None or time.monotonic() - idle_since < IDLE_PING_S:
        return
    try:
        ping(dbapi_conn)
    except Exception as exc:
        # The pool discards this connection and checks out (or opens) another.
        raise sa.exc.DisconnectionError("idle connection was dropped by the database") from exc


def ping(dbapi_conn: Any) -> None:
    """One round trip on a DBAPI connection; raises if the connection is gone."""
    cursor = dbapi_conn.cursor()
    try:
        cursor.execute("SELECT 1")
        cursor.fetchall()
    finally:
        cursor.close()


def _sqlite_engine(u: URL, pool_size: int, read_only: bool, echo: bool) -> Engine:
    if u.database in (None, "", ":memory:"):
        # An in-memory database exists once per connection: everyone shares one.
        engine = sa.create_engine(u, echo=echo, poolclass=sa.pool.StaticPool, connect_args={"check_same_thread": False})
    else:
        engine = sa.create_engine(
            u,
            echo=echo,
            poolclass=sa.pool.QueuePool,
            pool_size=pool_size,
            max_overflow=pool_size,
            connect_args={"check_same_thread": False, "timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
        )
    sa.event.listen(engine, "connect", _on_sqlite_connect)
    if read_only:
        sa.event.listen(engine, "connect", _on_sqlite_connect_read_only)
    else:
        sa.event.listen(engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect_read_only(dbapi_conn: sqlite3.Connection, _record: Any) -> None:
    dbapi_conn.execute("PRAGMA query_only=ON")


def make_admin_engine(url: str | URL) -> Engine:
    """An AUTOCOMMIT engine without pooling, for CREATE/DROP DATABASE and similar."""
    return sa.create_engine(normalize_url(url), isolation_level="AUTOCOMMIT", poolclass=NullPool)


def is_sqlite(engine: Engine) -> bool:
    return engine.dialect.name == "sqlite"
