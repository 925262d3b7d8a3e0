"""Responses assembled from stored protobuf bytes, sent without a parse and a re-serialize.

Spans are stored as their serialized ``Span`` (SPEC §3.2). A ``Trace`` on the wire is its
``info`` as field 1 and each span as field 2, every one a length-delimited record: the response
to GetTrace is those bytes joined. Parsing 10,000 stored spans into a ``Trace`` and serializing
it again cost ~90 ms of the ~300 ms such a GetTrace takes.

``register`` adds a generated service to the server so that any of its methods may return such
bytes instead of a message: the response serializer passes ``bytes`` through as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

import grpc


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


def _passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    if serializer is None:
        return None
    return lambda response: response if isinstance(response, bytes) else serializer(response)


def _patched(handler: Any) -> Any:
    return handler._replace(response_serializer=_passing_bytes(handler.response_serializer))


class _Generic(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        handler = self._inner.service(handler_call_details)
        return _patched(handler) if handler is not None else None


class _Registrar:
    """What a generated ``add_*Servicer_to_server`` calls, with the handlers patched."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Generic(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        self._server.add_registered_method_handlers(service, {n: _patched(h) for n, h in handlers.items()})


def register(add: Callable[[Any, Any], None], servicer: Any, server: grpc.Server) -> None:
    """``add(servicer, server)`` (a generated function), letting methods return bytes."""
    add(servicer, _Registrar(server))
