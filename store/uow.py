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
from collections.abc import Callable
from functools import cached_property
from typing import TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine

from store.dberrors import translate_any
from store.engine import make_engine
from store.errors import Aborted
from store.orm.base import table
from store.orm.system import ServiceSettingRow
from store.query.keyset import PageTokenCodec
from store.repositories.experiments import ExperimentRepository
from store.repositories.request_ids import RequestIdRepository

T = TypeVar("T")

WRITE_ATTEMPTS = 4
DEFAULT_ARTIFACT_ROOT = "mlflow-artifacts:"


class UnitOfWork:
    """One connection in one transaction, with the repositories bound to it."""

    def __init__(self, db: Database, conn: Connection) -> None:
        self.db = db
        self.conn = conn

    @property
    def dialect(self) -> str:
        return self.conn.dialect.name

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

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def read(self, fn: Callable[[UnitOfWork], T]) -> T:
        """Run ``fn`` on a read-only connection (autocommit: each statement sees committed data)."""
        try:
            with self.read_engine.connect() as conn:
                return fn(UnitOfWork(self, conn))
        except Exception as exc:
            translated = translate_any(exc)
            if translated is None:
                raise
            raise translated from exc

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
        try:
            with self.engine.connect() as plain:
                conn = plain.execution_options(sqlite_begin="IMMEDIATE") if self.dialect == "sqlite" else plain
                with conn.begin():
                    return fn(UnitOfWork(self, conn))
        except Exception as exc:
            translated = translate_any(exc)
            if translated is None:
                raise
            raise translated from exc

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
        self.engine.dispose()
        self.read_engine.dispose()
