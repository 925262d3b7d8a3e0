"""Idempotency keys (SPEC §1.8).

A write with a ``request_id`` records the key, a fingerprint of the request and the serialized
response **in the same transaction** as the write itself (``record``), so the key commits or
rolls back with the data. ``record`` reports whether the key was new: when another call holding
the same key committed first (a retry racing the original, possibly on another server process),
PostgreSQL makes this INSERT wait for it and then skip, and the caller rolls its own work back
and answers with the stored response (``lookup``) — one write, whoever wins.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.orm.base import table
from store.orm.system import RequestIdRow

if TYPE_CHECKING:
    from store.uow import UnitOfWork

_T = table(RequestIdRow)
_P = sa.bindparam
_LOOKUP = sa.select(_T.c.method, _T.c.fingerprint, _T.c.response).where(_T.c.request_id == _P("b_id"))
_PURGE = sa.delete(_T).where(_T.c.create_time < _P("b_before"))


@cache
def _record(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    return (
        insert(_T)
        .values(
            request_id=_P("b_id"),
            method=_P("b_method"),
            fingerprint=_P("b_fingerprint"),
            response=_P("b_response", type_=sa.LargeBinary()),
            create_time=_P("b_now"),
        )
        .on_conflict_do_nothing()
        .returning(_T.c.request_id)
    )


@dataclass(frozen=True, slots=True)
class StoredRequest:
    method: str
    fingerprint: str
    response: bytes


class RequestIdRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def record(self, request_id: str, method: str, fingerprint: str, response: bytes, now_ms: int) -> bool:
        """Store this call's key and response; False if the key is already taken (committed)."""
        params = {
            "b_id": request_id,
            "b_method": method,
            "b_fingerprint": fingerprint,
            "b_response": response,
            "b_now": now_ms,
        }
        return bool(self._uow.fetch(_record(self._uow.dialect), params))

    def lookup(self, request_id: str) -> StoredRequest | None:
        rows = self._uow.fetch(_LOOKUP, {"b_id": request_id})
        if not rows:
            return None
        return StoredRequest(rows[0].method, rows[0].fingerprint, bytes(rows[0].response))

    def purge(self, older_than_ms: int) -> int:
        """Forget keys created before ``older_than_ms``; returns how many."""
        return int(self._uow.conn.execute(_PURGE, {"b_before": older_than_ms}).rowcount)
