"""The unit of work: one database transaction per RPC.

``Database`` is the store's entry point. Servicers hand it a function of a ``UnitOfWork``:

    exp = db.write(lambda uow: uow.experiments.create(...))   # commits, retries conflicts
    exp = db.read(lambda uow: uow.experiments.get("42"))       # read-only, never commits

``write`` runs the function in a transaction and commits it; a serialization failure or
deadlock (PostgreSQL 40001/40P01) rolls back and runs the whole function again, up to
``WRITE_ATTEMPTS`` times — that retry lives here and nowhere else. Database errors leave as
``store.errors`` exceptions (``store/dberrors.py``); an unclassified one is a bug and leaves
unchanged. Repositories never commit.

On SQLite, write transactions begin with ``BEGIN IMMEDIATE``: the write lock is taken up front,
so two writers queue on ``busy_timeout`` instead of deadlocking on lock upgrade.
"""

from __future__ import annotations

import base64
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import cached_property
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine
from sqlalchemy.sql import ClauseElement

from store.dberrors import translate_any
from store.engine import IDLE_PING_S, make_engine, ping
from store.errors import Aborted, Unavailable
from store.orm.base import table
from store.orm.system import ServiceSettingRow
from store.query import pg_exec
from store.query.keyset import PageTokenCodec
from store.query.raw import ForIds, RawStatement, compile_raw
from store.repositories.assessments import AssessmentRepository
from store.repositories.dataset_fields import DatasetFieldStore
from store.repositories.dataset_records import DatasetRecordWriter
from store.repositories.dataset_versions import DatasetReader
from store.repositories.datasets import DatasetRepository
from store.repositories.experiments import ExperimentRepository
from store.repositories.label_schemas import LabelSchemaRepository
from store.repositories.labeling import LabelingRepository
from store.repositories.logged_models import LoggedModelRepository
from store.repositories.request_ids import RequestIdRepository
from store.repositories.run_results import RunResultsReader
from store.repositories.runs import RunRepository
from store.repositories.trace_metrics import TraceMetricsReader
from store.repositories.trace_reads import TraceReader
from store.repositories.traces import TraceMutations, TraceRepository

T = TypeVar("T")

WRITE_ATTEMPTS = 4
_READ, _WRITE = "read", "write"  # kinds of per-thread connections
DEFAULT_ARTIFACT_ROOT = "mlflow-artifacts:"


@contextmanager
def database_errors() -> Iterator[None]:
    """Turn database errors into ``store.errors`` (unclassified ones, bugs, pass unchanged)."""
    try:
        yield
    except Exception as exc:
        translated = translate_any(exc)
        if translated is None:
            raise
        raise translated from exc


class UnitOfWork:
    """One connection in one transaction, with the repositories bound to it."""

    def __init__(self, db: Database, conn: Connection) -> None:
        self.db = db
        self.conn = conn

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

    def fetch(self, stmt: ClauseElement, params: dict[str, Any]) -> list[Any]:
        """Run a prebuilt statement on the driver's cursor (see ``store/query/raw.py``).

        Same connection and transaction as ``self.conn``; rows are named tuples. Driver errors
        are wrapped like SQLAlchemy's own, so they are classified the same way, and a dropped
        connection is invalidated so the pool replaces it.
        """
        return self.fetch_raw(compile_raw(stmt, self.conn.dialect), params)

    def fetch_raw(self, raw: RawStatement, params: dict[str, Any]) -> list[Any]:
        """``fetch`` of an already compiled statement."""
        dbapi_conn = self.conn.connection.dbapi_connection
        assert dbapi_conn is not None
        with self._driver_errors(raw.sql, dbapi_conn):
            if self.dialect == "postgresql":
                return pg_exec.fetch(dbapi_conn, raw, params)
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(raw.sql, raw.parameters(params))
                if raw.row is None:
                    return []
                make = raw.row
                return [make(*r) for r in cursor.fetchall()]
            finally:
                cursor.close()

    def fetch_ids(self, stmt: ForIds, ids: Sequence[str], params: dict[str, Any] | None = None) -> list[Any]:
        """``fetch`` of a statement over a list of ids (see ``store/query/raw.py``)."""
        values = {**(params or {}), "b_ids": stmt.parameter(self.dialect, ids)}
        if self.dialect == "postgresql":
            return self.fetch_raw(compile_raw(stmt.postgresql, self.conn.dialect, stmt.pg_suffix), values)
        return self.fetch(stmt.sqlite, values)

    def fetch_column(self, stmt: ClauseElement, params: dict[str, Any]) -> list[Any]:
        """The first column of ``fetch``'s rows, fetched in the driver's binary format where it
        has one (PostgreSQL: ``bytea`` arrives as is, not as hex text to decode)."""
        raw = compile_raw(stmt, self.conn.dialect)
        dbapi_conn = self.conn.connection.dbapi_connection
        assert dbapi_conn is not None
        with self._driver_errors(raw.sql, dbapi_conn):
            if self.dialect == "postgresql":
                return [r[0] for r in pg_exec.fetch(dbapi_conn, raw, params, binary=True)]
            cursor = dbapi_conn.cursor()
            try:
                cursor.execute(raw.sql, raw.parameters(params))
                return [r[0] for r in cursor.fetchall()]
            finally:
                cursor.close()

    def fetch_many(self, stmt: ClauseElement, rows: list[dict[str, Any]]) -> None:
        """Run a prebuilt statement once per parameter set (``executemany``; pipelined by psycopg)."""
        raw = compile_raw(stmt, self.conn.dialect)
        dbapi_conn = self.conn.connection.dbapi_connection
        assert dbapi_conn is not None
        with self._driver_errors(raw.sql, dbapi_conn):
            cursor = dbapi_conn.cursor()
            try:
                cursor.executemany(raw.sql, [raw.parameters(r) for r in rows])
            finally:
                cursor.close()

    @contextmanager
    def _driver_errors(self, sql: str, dbapi_conn: Any) -> Iterator[None]:
        """Wrap driver errors like SQLAlchemy does (so they are classified the same way) and
        invalidate a connection the database dropped, so the pool replaces it."""
        dialect = self.conn.dialect
        try:
            yield
        except dialect.loaded_dbapi.Error as err:
            gone = dialect.is_disconnect(err, dbapi_conn, None)
            if gone:
                self.conn.invalidate()
            raise sa.exc.DBAPIError.instance(
                sql, None, err, dialect.loaded_dbapi.Error, connection_invalidated=gone, dialect=dialect
            ) from err

    def insert(self, target: sa.Table) -> postgresql.Insert | sqlite.Insert:
        """A dialect INSERT (with ``on_conflict_do_*``) for this connection's backend."""
        if self.dialect == "postgresql":
            return postgresql.insert(target)
        return sqlite.insert(target)

    @cached_property
    def experiments(self) -> ExperimentRepository:
        return ExperimentRepository(self)

    @cached_property
    def request_ids(self) -> RequestIdRepository:
        return RequestIdRepository(self)

    @cached_property
    def traces(self) -> TraceRepository:
        """Span ingestion (LogSpans)."""
        return TraceRepository(self)

    @cached_property
    def trace_mutations(self) -> TraceMutations:
        """StartTrace, EndTrace, trace tags, DeleteTraces."""
        return TraceMutations(self, self.traces)

    @cached_property
    def trace_reads(self) -> TraceReader:
        return TraceReader(self)

    @cached_property
    def assessments(self) -> AssessmentRepository:
        return AssessmentRepository(self)

    @cached_property
    def datasets(self) -> DatasetRepository:
        """Evaluation datasets: the dataset rows, tags, experiment links."""
        return DatasetRepository(self)

    @cached_property
    def dataset_records(self) -> DatasetRecordWriter:
        """MergeRecords, DeleteRecords, records from traces."""
        return DatasetRecordWriter(self)

    @cached_property
    def dataset_reads(self) -> DatasetReader:
        """Records at any version, versions, diffs."""
        return DatasetReader(self)

    @cached_property
    def dataset_fields(self) -> DatasetFieldStore:
        return DatasetFieldStore(self)

    @cached_property
    def logged_models(self) -> LoggedModelRepository:
        return LoggedModelRepository(self)

    @cached_property
    def runs(self) -> RunRepository:
        """Evaluation runs, their params, metrics, tags and trace links."""
        return RunRepository(self)

    @cached_property
    def trace_metrics(self) -> TraceMetricsReader:
        """QueryTraceMetrics."""
        return TraceMetricsReader(self)

    @cached_property
    def run_results(self) -> RunResultsReader:
        """GetRunResults, CompareRuns."""
        return RunResultsReader(self)

    @cached_property
    def label_schemas(self) -> LabelSchemaRepository:
        return LabelSchemaRepository(self)

    @cached_property
    def labeling(self) -> LabelingRepository:
        """Labeling sessions, items, leases, submissions."""
        return LabelingRepository(self)


class Database:
    """Engine, unit-of-work runner and service-wide settings for one database URL."""

    def __init__(
        self,
        url: str | URL,
        *,
        pool_size: int = 20,
        artifact_root: str = DEFAULT_ARTIFACT_ROOT,
        engine: Engine | None = None,
    ) -> None:
        self.engine = engine if engine is not None else make_engine(url, pool_size=pool_size)
        self.read_engine = (
            make_engine(self.engine.url, pool_size=pool_size, read_only=True)
            if self.engine.url.database not in (None, "", ":memory:")
            else self.engine
        )
        self.artifact_root = artifact_root.rstrip("/")
        self._codec: PageTokenCodec | None = None
        self._local = threading.local()
        self._keep = pool_size  # connections kept by threads, per kind (the pool's size)
        self._held: dict[Connection, tuple[str, threading.Thread]] = {}  # kept: kind, thread
        self._reserved = {_READ: 0, _WRITE: 0}  # kept connections being opened
        self._held_lock = threading.Lock()

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` on a read-only connection (autocommit: each statement sees committed data).

        Each request thread keeps its read connection between calls: checking a connection out
        of the pool and back in cost ~90 µs per GetExperiment (15% of the server's CPU), and an
        autocommit read connection carries no state from one call to the next. A connection
        that fails is dropped, so the next call opens a fresh one.
        """
        if self.read_engine is self.engine:  # in-memory SQLite: one shared connection
            with database_errors(), self.engine.connect() as shared:
                return fn(UnitOfWork(self, shared))
        with database_errors():
            conn = self._thread_connection(_READ, self.read_engine)
        if conn is None:
            with database_errors(), self.read_engine.connect() as pooled:
                return fn(UnitOfWork(self, pooled))
        try:
            with database_errors():
                result = fn(UnitOfWork(self, conn))
        except (Unavailable, sa.exc.SQLAlchemyError):
            self._drop_connection(_READ, conn)  # the connection may be broken: start afresh
            raise
        except BaseException:
            conn.rollback()
            raise
        conn.rollback()  # ends SQLAlchemy's logical transaction; nothing to roll back in autocommit
        return result

    def _thread_connection(self, kind: str, engine: Engine) -> Connection | None:
        """This thread's connection of ``kind`` (read or write) from ``engine``; one idle for a
        while is pinged first (see engine.py). None when the threads already keep as many
        connections of this kind as the pool holds: the caller then takes one from the pool
        and gives it back (so more threads than that still work, just without the saving)."""
        conn: Connection | None = getattr(self._local, kind, None)
        now = time.monotonic()
        if conn is not None and (conn.invalidated or now - getattr(self._local, kind + "_used_at") > IDLE_PING_S):
            try:
                if conn.invalidated:
                    raise ConnectionError("invalidated")
                ping(conn.connection.dbapi_connection)
            except Exception:
                self._drop_connection(kind, conn)
                conn = None
        if conn is None:
            if not self._reserve(kind):
                return None
            try:
                conn = engine.connect()
            except BaseException:
                with self._held_lock:
                    self._reserved[kind] -= 1
                raise
            if kind == _WRITE and self.dialect == "sqlite":
                conn = conn.execution_options(sqlite_begin="IMMEDIATE")
            setattr(self._local, kind, conn)
            with self._held_lock:
                self._reserved[kind] -= 1
                self._held[conn] = (kind, threading.current_thread())
        setattr(self._local, kind + "_used_at", now)
        return conn

    def _reserve(self, kind: str) -> bool:
        """Claim one of the ``pool_size`` connections of ``kind`` threads may keep; the
        connections of threads that have ended are closed first."""
        with self._held_lock:
            kept = [c for c, (k, _) in self._held.items() if k == kind]
            orphans = [c for c in kept if not self._held[c][1].is_alive()]
            for conn in orphans:
                del self._held[conn]
            claimed = len(kept) - len(orphans) + self._reserved[kind] < self._keep
            if claimed:
                self._reserved[kind] += 1
        for conn in orphans:
            conn.close()
        return claimed

    def _forget(self, kind: str, conn: Connection) -> None:
        """The calling thread no longer keeps ``conn`` (its connection of ``kind``)."""
        setattr(self._local, kind, None)
        with self._held_lock:
            self._held.pop(conn, None)

    def _drop_connection(self, kind: str, conn: Connection) -> None:
        self._forget(kind, conn)
        try:
            conn.invalidate()
            conn.close()
        except Exception:
            pass  # the connection is being thrown away anyway

    def release_thread(self) -> None:
        """Give back the connections the calling thread keeps: for a thread done with the
        database, such as the one that starts a server. Kept, its connection would count
        against the ``pool_size`` that request threads may keep, and one request thread would
        borrow from the pool on every call."""
        for kind in (_READ, _WRITE):
            conn = getattr(self._local, kind, None)
            if conn is not None:
                self._forget(kind, conn)
                conn.close()  # back to the pool

    def write(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` in a write transaction and commit; retry it on serialization conflicts."""
        for attempt in range(1, WRITE_ATTEMPTS + 1):
            try:
                return self._write_once(fn)
            except Aborted as exc:
                if exc.reason != "CONCURRENCY_CONFLICT" or attempt == WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    def _write_once(self, fn: Callable[[UnitOfWork], T]) -> T:
        """One attempt of ``fn`` in a transaction on this thread's write connection.

        Like reads, each request thread keeps its write connection between calls: the pool's
        checkout and checkin cost more CPU than a small write's own statements. A connection
        that fails is dropped, so the next call opens a fresh one. A write started inside
        another write of the same thread (or on in-memory SQLite) takes one from the pool.
        """
        if self.read_engine is self.engine:
            return self._write_pooled(fn)
        with database_errors():
            conn = self._thread_connection(_WRITE, self.engine)
        if conn is None or conn.in_transaction():
            return self._write_pooled(fn)
        try:
            with database_errors(), conn.begin():
                return fn(UnitOfWork(self, conn))
        except (Unavailable, sa.exc.SQLAlchemyError):
            self._drop_connection(_WRITE, conn)  # the connection may be broken: start afresh
            raise
        except BaseException:
            if conn.invalidated:
                self._drop_connection(_WRITE, conn)
            raise

    def _write_pooled(self, fn: Callable[[UnitOfWork], T]) -> T:
        with database_errors(), self.engine.connect() as plain:
            conn = plain.execution_options(sqlite_begin="IMMEDIATE") if self.dialect == "sqlite" else plain
            with conn.begin():
                return fn(UnitOfWork(self, conn))

    @property
    def page_tokens(self) -> PageTokenCodec:
        """Codec keyed by a secret stored in the database, so every server process agrees."""
        if self._codec is None:
            self._codec = PageTokenCodec(self._page_token_key())
        return self._codec

    def _page_token_key(self) -> bytes:
        def load(uow: UnitOfWork) -> str:
            settings = table(ServiceSettingRow)
            fresh = base64.b64encode(secrets.token_bytes(32)).decode()
            uow.conn.execute(uow.insert(settings).values(key="page_token_key", value=fresh).on_conflict_do_nothing())
            key = uow.conn.execute(sa.select(settings.c.value).where(settings.c.key == "page_token_key")).scalar_one()
            return str(key)

        return base64.b64decode(self.write(load))

    def dispose(self) -> None:
        with self._held_lock:
            held, self._held = list(self._held), {}
        for conn in held:
            conn.close()
        self.engine.dispose()
        self.read_engine.dispose()
