"""Idempotency keys (SPEC §1.8).

``claim`` inserts the key in the caller's transaction. A concurrent call with the same key
blocks on the primary key until the first commits (PostgreSQL) or waits for the write lock
(SQLite), then sees the stored result — so a retried write runs once even when the retry races
the original on another server process.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import sqlalchemy as sa

from store.errors import InvalidArgument
from store.orm.base import table
from store.orm.system import RequestIdRow

if TYPE_CHECKING:
    from store.uow import UnitOfWork

_T = table(RequestIdRow)


class RequestIdRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._conn = uow.conn
        self._uow = uow

    def claim(self, request_id: str, method: str, fingerprint: str, now_ms: int) -> bytes | None:
        """Claim ``request_id`` for this call; return the stored response if it ran before.

        The same id with another method or request body is INVALID_ARGUMENT (REQUEST_ID_REUSED).
        """
        stmt = (
            self._uow.insert(_T)
            .values(request_id=request_id, method=method, fingerprint=fingerprint, create_time=now_ms)
            .on_conflict_do_nothing()
            .returning(_T.c.request_id)
        )
        if self._conn.execute(stmt).first() is not None:
            return None
        row = self._conn.execute(
            sa.select(_T.c.method, _T.c.fingerprint, _T.c.response).where(_T.c.request_id == request_id)
        ).one()
        if row.method != method or row.fingerprint != fingerprint:
            raise InvalidArgument.field(
                "request_id",
                "this request_id was already used for a different request",
                reason="REQUEST_ID_REUSED",
            )
        return bytes(row.response) if row.response is not None else None

    def record(self, request_id: str, response: bytes) -> None:
        """Store the result of the call that claimed ``request_id``."""
        self._conn.execute(sa.update(_T).where(_T.c.request_id == request_id).values(response=response))

    def purge(self, older_than_ms: int) -> int:
        """Forget keys created before ``older_than_ms``; returns how many."""
        return self._conn.execute(sa.delete(_T).where(_T.c.create_time < older_than_ms)).rowcount
