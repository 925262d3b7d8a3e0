"""``request_id`` idempotency for Create* and batch writes (SPEC §1.8).

``idempotent_write`` runs the write in one transaction together with the claim of its request
id and stores the serialized response next to it. A repeat of the call returns that stored
response byte for byte, without writing; the same id on a different request (another method,
or any difference in the body) is INVALID_ARGUMENT (REQUEST_ID_REUSED).
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from server.validation import Violations
from store.uow import Database, UnitOfWork

M = TypeVar("M", bound=Message)


def fingerprint(request: Message) -> str:
    """SHA-256 of the request without its request_id, serialized deterministically."""
    body = type(request)()
    body.CopyFrom(request)
    body.ClearField("request_id")  # type: ignore[arg-type]
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


def idempotent_write(
    db: Database, method: str, request: Message, response_type: type[M], work: Callable[[UnitOfWork], M]
) -> M:
    request_id: str = getattr(request, "request_id", "")
    if not request_id:
        return db.write(work)
    checks = Violations()
    checks.request_id(request_id)
    checks.raise_if_any()
    key = request_id.lower()
    digest = fingerprint(request)

    def tx(uow: UnitOfWork) -> M:
        stored = uow.request_ids.claim(key, method, digest, int(time.time() * 1000))
        if stored is not None:
            return response_type.FromString(stored)
        response = work(uow)
        uow.request_ids.record(key, response.SerializeToString())
        return response

    return db.write(tx)
