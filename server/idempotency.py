"""``request_id`` idempotency for Create* and batch writes (SPEC §1.8).

``idempotent_write`` runs the write and, in the same transaction, records the request id, a
fingerprint of the request and the serialized response. A repeat of the call returns that
stored response byte for byte without writing; the same id on a different request (another
method, or any difference in the body) is INVALID_ARGUMENT (REQUEST_ID_REUSED).

The common case costs one extra INSERT. A repeat is recognised after the fact: either its
work fails (say ALREADY_EXISTS, because the first call created the thing) or its key INSERT
finds the key taken; then its transaction is rolled back, the stored call is looked up, and
its response returned. Nothing a repeat did survives it.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from typing import TypeVar

from google.protobuf.message import Message

from server.validation import Violations
from store.errors import InvalidArgument, StoreError
from store.uow import Database, UnitOfWork

M = TypeVar("M", bound=Message)


class _KeyTaken(Exception):
    """Another call with this request id committed first: roll this one back."""


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
        response = work(uow)
        if not uow.request_ids.record(key, method, digest, response.SerializeToString(), int(time.time() * 1000)):
            raise _KeyTaken
        return response

    try:
        return db.write(tx)
    except (_KeyTaken, StoreError) as failure:
        stored = db.read(lambda uow: uow.request_ids.lookup(key))
        if stored is None:
            if isinstance(failure, _KeyTaken):  # the key expired in between: just run again
                return db.write(tx)
            raise
        if stored.method != method or stored.fingerprint != digest:
            raise InvalidArgument.field(
                "request_id", "this request_id was already used for a different request", reason="REQUEST_ID_REUSED"
            ) from None
        return response_type.FromString(stored.response)
