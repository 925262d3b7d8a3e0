"""Responses assembled from stored protobuf bytes, sent without a parse and a re-serialize.

Spans are stored as their serialized ``Span`` (SPEC §3.2). A ``Trace`` on the wire is its
``info`` as field 1 and each span as field 2, every one a length-delimited record: the response
to GetTrace is those bytes joined. Parsing 10,000 stored spans into a ``Trace`` and serializing
it again cost ~90 ms of the ~300 ms such a GetTrace takes.

A servicer method returns such bytes instead of a message; ``server/registration.py`` has the
response serializer pass them through as they are.
"""

from __future__ import annotations

from collections.abc import Iterable


def field(number: int, payload: bytes) -> bytes:
    """One length-delimited field (wire type 2) of a message."""
    return _key(number) + varint(len(payload)) + payload


def varint(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    out = bytearray()
    while n >= 0x80:
        out.append(n & 0x7F | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _key(number: int) -> bytes:
    return varint(number << 3 | 2)


def repeated(number: int, payloads: Iterable[bytes]) -> bytes:
    """The field ``number`` repeated once per payload (e.g. a Trace's spans)."""
    key = _key(number)
    parts: list[bytes] = []
    for payload in payloads:
        parts += (key, varint(len(payload)), payload)
    return b"".join(parts)
