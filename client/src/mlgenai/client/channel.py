"""Opening a channel to mlgenai: message size, retries, deadlines, request ids, error decoding.

Retries are gRPC's own (a service config with a ``retryPolicy``): calls that fail with
UNAVAILABLE (server restarting, database briefly unreachable) are re-sent with exponential
backoff. That is safe for every RPC because the channel (``_Unary``) gives each write that has a
``request_id`` field and none set a fresh UUID, so the server recognises a re-sent call and
returns the first call's result instead of writing twice (SPEC §1.8).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import grpc

from mlgenai.client.errors import from_rpc_error

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024


def services() -> tuple[str, ...]:
    """Full names of every service in the generated ``mlgenai.v1`` package."""
    import importlib
    import pkgutil

    import mlgenai.v1

    names: list[str] = []
    for module in pkgutil.iter_modules(mlgenai.v1.__path__):
        if module.name.endswith("_service_pb2"):
            descriptor = importlib.import_module(f"mlgenai.v1.{module.name}").DESCRIPTOR
            names.extend(s.full_name for s in descriptor.services_by_name.values())
    return tuple(sorted(names))


@dataclass(frozen=True)
class RetryPolicy:
    """gRPC retry policy applied to every mlgenai method (see the gRPC retry design, A6)."""

    max_attempts: int = 5
    initial_backoff_s: float = 0.1
    max_backoff_s: float = 5.0
    backoff_multiplier: float = 2.0
    retryable_status_codes: tuple[str, ...] = ("UNAVAILABLE",)

    def service_config(self) -> str:
        policy = {
            "maxAttempts": self.max_attempts,
            "initialBackoff": f"{self.initial_backoff_s}s",
            "maxBackoff": f"{self.max_backoff_s}s",
            "backoffMultiplier": self.backoff_multiplier,
            "retryableStatusCodes": list(self.retryable_status_codes),
        }
        config = {"methodConfig": [{"name": [{"service": s} for s in services()], "retryPolicy": policy}]}
        return json.dumps(config)


DEFAULT_RETRY = RetryPolicy()


_HAS_REQUEST_ID: dict[type, bool] = {}


def _with_request_id(request: Any) -> Any:
    """``request``, or a copy with a fresh ``request_id`` when it has that field and none set."""
    kind = type(request)
    has = _HAS_REQUEST_ID.get(kind)
    if has is None:
        descriptor = getattr(request, "DESCRIPTOR", None)  # (None: bytes sent without a serializer)
        has = _HAS_REQUEST_ID[kind] = descriptor is not None and "request_id" in descriptor.fields_by_name
    if not has or request.request_id:
        return request
    fresh = kind()
    fresh.CopyFrom(request)
    fresh.request_id = str(uuid.uuid4())
    return fresh


class _DecodedFuture(grpc.Future):  # type: ignore[misc,type-arg]
    """A call's future whose failure is the decoded ``MlgenaiError``."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner

    def cancel(self) -> bool:
        return bool(self._inner.cancel())

    def cancelled(self) -> bool:
        return bool(self._inner.cancelled())

    def running(self) -> bool:
        return bool(self._inner.running())

    def done(self) -> bool:
        return bool(self._inner.done())

    def result(self, timeout: float | None = None) -> Any:
        try:
            return self._inner.result(timeout=timeout)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def exception(self, timeout: float | None = None) -> Exception | None:
        exc = self._inner.exception(timeout=timeout)
        return from_rpc_error(exc) if isinstance(exc, grpc.RpcError) else exc

    def traceback(self, timeout: float | None = None) -> Any:
        return self._inner.traceback(timeout=timeout)

    def add_done_callback(self, fn: Callable[[Any], None]) -> None:
        self._inner.add_done_callback(lambda _inner: fn(self))

    def __getattr__(self, name: str) -> Any:  # the grpc.Call side: code(), details(), metadata
        return getattr(self._inner, name)


class _Unary:
    """A unary-unary multicallable with mlgenai's defaults: a default deadline, a fresh
    ``request_id`` for writes that have none, errors decoded into ``MlgenaiError``. With several
    channels' multicallables, each call goes down the next one (``PooledChannel``).

    This is what a ``grpc.UnaryUnaryClientInterceptor`` would do, without grpc's interceptor
    machinery: that cost ~100 µs of client CPU per call, a sixth of a small call's."""

    __slots__ = ("_next", "_timeout")

    def __init__(self, callables: Sequence[Any], timeout: float | None) -> None:
        only = callables[0]
        self._next: Callable[[], Any] = itertools.cycle(callables).__next__ if len(callables) > 1 else lambda: only
        self._timeout = timeout

    # The rest of grpc's arguments (metadata, credentials, wait_for_ready, compression) pass
    # through, by position or by name.
    def __call__(self, request: Any, timeout: float | None = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._next()(
                _with_request_id(request), self._timeout if timeout is None else timeout, *args, **kwargs
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def with_call(self, request: Any, timeout: float | None = None, *args: Any, **kwargs: Any) -> Any:
        try:
            return self._next().with_call(
                _with_request_id(request), self._timeout if timeout is None else timeout, *args, **kwargs
            )
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    def future(self, request: Any, timeout: float | None = None, *args: Any, **kwargs: Any) -> _DecodedFuture:
        inner = self._next().future(
            _with_request_id(request), self._timeout if timeout is None else timeout, *args, **kwargs
        )
        return _DecodedFuture(inner)


class _InTurn:
    """A stream multicallable that sends each call down the next of several channels'."""

    def __init__(self, callables: Sequence[Any]) -> None:
        self._next = itertools.cycle(callables).__next__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._next()(*args, **kwargs)


class PooledChannel(grpc.Channel):  # type: ignore[misc]
    """One or more channels, each with its own connection, used in turn call by call, with
    mlgenai's defaults on every unary call (``_Unary``); streams pass through as they are.

    A server started with ``--workers N`` is N processes sharing one port, and the kernel hands
    each new connection to one of them: every call of a single connection lands in the same
    process. A client that should keep all of them busy opens as many connections
    (``connect(..., connections=N)``). Each channel keeps its own subchannel
    (``grpc.use_local_subchannel_pool``): by default gRPC shares one connection between
    channels with the same target and options.
    """

    def __init__(self, channels: Sequence[grpc.Channel], timeout: float | None = None) -> None:
        self.channels = list(channels)
        if not self.channels:
            raise ValueError("a PooledChannel needs at least one channel")
        self.timeout = timeout

    def _pooled(self, kind: str, method: str, *args: Any, **kwargs: Any) -> Any:
        callables = [getattr(c, kind)(method, *args, **kwargs) for c in self.channels]
        return callables[0] if len(callables) == 1 else _InTurn(callables)

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:  # a _Unary
        return _Unary([c.unary_unary(method, *args, **kwargs) for c in self.channels], self.timeout)

    def unary_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._pooled("unary_stream", method, *args, **kwargs)

    def stream_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._pooled("stream_unary", method, *args, **kwargs)

    def stream_stream(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._pooled("stream_stream", method, *args, **kwargs)

    def subscribe(self, callback: Callable[[grpc.ChannelConnectivity], None], try_to_connect: bool = False) -> None:
        for channel in self.channels:
            channel.subscribe(callback, try_to_connect)

    def unsubscribe(self, callback: Callable[[grpc.ChannelConnectivity], None]) -> None:
        for channel in self.channels:
            channel.unsubscribe(callback)

    def close(self) -> None:
        for channel in self.channels:
            channel.close()

    def __enter__(self) -> PooledChannel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_channel(
    target: str,
    *,
    timeout: float | None = 30.0,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
    connections: int = 1,
) -> grpc.Channel:
    """A channel to ``target`` (``host:port``) with mlgenai's defaults.

    ``timeout`` is the default deadline in seconds of a call that sets none (None: no default).
    ``retry=None`` disables retries. ``connections`` > 1 opens that many connections and sends
    calls down them in turn (``PooledChannel``): one connection reaches one server worker.
    """
    if connections < 1:
        raise ValueError(f"connections must be at least 1, not {connections}")
    opts: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1 if retry else 0),
    ]
    if retry is not None:
        opts.append(("grpc.service_config", retry.service_config()))
    if connections > 1:
        opts.append(("grpc.use_local_subchannel_pool", 1))
    opts.extend(options)

    def one() -> grpc.Channel:
        if credentials is None:
            return grpc.insecure_channel(target, options=opts)
        return grpc.secure_channel(target, credentials, options=opts)

    return PooledChannel([one() for _ in range(connections)], timeout)
