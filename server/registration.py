"""How the generated services are added to the server: ``register(add, servicer, server)``.

Two things differ from what a generated ``add_*Servicer_to_server`` sets up:

* **Requests are parsed inside the call**, not by grpc. grpc answers bytes that its deserializer
  refuses with INTERNAL "Exception deserializing request!", before any interceptor sees the
  call; parsed here, they are INVALID_ARGUMENT ``MALFORMED_REQUEST`` through the interceptor,
  like any bad input (SPEC §1.7: INTERNAL means a bug). A method marked ``@raw_request`` gets
  the bytes as they came and reads them itself (LogSpans: ``server/_pbvalues.c``).
* **A method may return ``bytes``** instead of a message (a response assembled from stored
  spans: ``server/preserialized.py``); the response serializer passes bytes through as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeVar

import grpc
from google.protobuf.message import DecodeError

from store.errors import InvalidArgument

F = TypeVar("F", bound=Callable[..., Any])


def raw_request(method: F) -> F:
    """Mark a servicer method as taking its request's serialized bytes."""
    method.raw_request = True  # type: ignore[attr-defined]
    return method


def malformed(message: str, exc: Exception) -> InvalidArgument:
    """The error for request bytes that are not a serialized ``message``."""
    return InvalidArgument(
        "MALFORMED_REQUEST", f"the request is not a valid serialized {message} ({type(exc).__name__})"
    )


def _parsing(behavior: Callable[[Any, Any], Any], parse: Callable[[bytes], Any]) -> Callable[[bytes, Any], Any]:
    """``behavior`` called with the request ``parse`` makes of the bytes (a ``FromString``)."""
    message_type = getattr(parse, "__self__", None)
    name = getattr(getattr(message_type, "DESCRIPTOR", None), "full_name", "request")

    def call(request: bytes, context: Any) -> Any:
        try:
            parsed = parse(request)
        except DecodeError as exc:
            raise malformed(name, exc) from None
        return behavior(parsed, context)

    return call


def _passing_bytes(serializer: Callable[[Any], bytes] | None) -> Callable[[Any], bytes] | None:
    if serializer is None:
        return None
    return lambda response: response if isinstance(response, bytes) else serializer(response)


def _patched(handler: Any) -> Any:
    changes: dict[str, Any] = {"response_serializer": _passing_bytes(handler.response_serializer)}
    behavior, parse = handler.unary_unary, handler.request_deserializer
    if behavior is not None and parse is not None:  # (every method of ours is unary)
        changes["request_deserializer"] = None
        if not getattr(behavior, "raw_request", False):
            changes["unary_unary"] = _parsing(behavior, parse)
    return handler._replace(**changes)


class _Generic(grpc.GenericRpcHandler):
    def __init__(self, inner: grpc.GenericRpcHandler) -> None:
        self._inner = inner
        self._handlers: dict[str, Any] = {}  # patched once per method

    def service(self, handler_call_details: grpc.HandlerCallDetails) -> Any:
        method = handler_call_details.method
        patched = self._handlers.get(method)
        if patched is None:
            handler = self._inner.service(handler_call_details)
            if handler is None:
                return None
            patched = self._handlers[method] = _patched(handler)
        return patched


class _Registrar:
    """What a generated ``add_*Servicer_to_server`` calls, with the handlers patched."""

    def __init__(self, server: grpc.Server) -> None:
        self._server = server

    def add_generic_rpc_handlers(self, handlers: Iterable[grpc.GenericRpcHandler]) -> None:
        self._server.add_generic_rpc_handlers(tuple(_Generic(h) for h in handlers))

    def add_registered_method_handlers(self, service: str, handlers: Mapping[str, Any]) -> None:
        self._server.add_registered_method_handlers(service, {n: _patched(h) for n, h in handlers.items()})


def register(add: Callable[[Any, Any], None], servicer: Any, server: grpc.Server) -> None:
    """``add(servicer, server)`` (a generated function) with requests parsed inside the call and
    bytes allowed as responses."""
    add(servicer, _Registrar(server))
