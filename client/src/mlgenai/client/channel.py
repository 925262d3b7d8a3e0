"""Opening a channel to mlgenai: message size, retries, deadlines, request ids, error decoding.

Retries are gRPC's own (a service config with a ``retryPolicy``): calls that fail with
UNAVAILABLE (server restarting, database briefly unreachable) are re-sent with exponential
backoff. That is safe for every RPC because the client interceptor gives each write that has a
``request_id`` field and none set a fresh UUID, so the server recognises a re-sent call and
returns the first call's result instead of writing twice (SPEC §1.8).
"""

from __future__ import annotations

import itertools
import json
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

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


class _CallDetails(NamedTuple):
    method: str
    timeout: float | None
    metadata: Any
    credentials: grpc.CallCredentials | None
    wait_for_ready: bool | None
    compression: Any


class _Interceptor(grpc.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    """Default deadline, automatic request ids, errors decoded into MlgenaiError."""

    def __init__(self, timeout: float | None) -> None:
        self._timeout = timeout

    def intercept_unary_unary(
        self, continuation: Callable[[Any, Any], Any], client_call_details: Any, request: Any
    ) -> Any:
        details = client_call_details
        if details.timeout is None and self._timeout is not None:
            details = _CallDetails(
                details.method,
                self._timeout,
                details.metadata,
                details.credentials,
                getattr(details, "wait_for_ready", None),
                getattr(details, "compression", None),
            )
        if "request_id" in request.DESCRIPTOR.fields_by_name and not request.request_id:
            fresh = type(request)()
            fresh.CopyFrom(request)
            fresh.request_id = str(uuid.uuid4())
            request = fresh
        outcome = continuation(details, request)
        exc = outcome.exception()
        if exc is not None:
            if isinstance(exc, grpc.RpcError):
                raise from_rpc_error(exc) from None
            raise exc
        return outcome


class _InTurn:
    """A multicallable that sends each call down the next of several channels' multicallables
    (``__call__``, ``with_call``, ``future``; streams through ``__call__``)."""

    def __init__(self, callables: Sequence[Any]) -> None:
        self._next = itertools.cycle(callables).__next__

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self._next()(*args, **kwargs)

    def with_call(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().with_call(*args, **kwargs)

    def future(self, *args: Any, **kwargs: Any) -> Any:
        return self._next().future(*args, **kwargs)


class PooledChannel(grpc.Channel):  # type: ignore[misc]
    """Several channels, each with its own connection, used in turn call by call.

    A server started with ``--workers N`` is N processes sharing one port, and the kernel hands
    each new connection to one of them: every call of a single connection lands in the same
    process. A client that should keep all of them busy opens as many connections
    (``connect(..., connections=N)``). Each channel keeps its own subchannel
    (``grpc.use_local_subchannel_pool``): by default gRPC shares one connection between
    channels with the same target and options.
    """

    def __init__(self, channels: Sequence[grpc.Channel]) -> None:
        self.channels = list(channels)

    def _pooled(self, kind: str, method: str, *args: Any, **kwargs: Any) -> _InTurn:
        return _InTurn([getattr(c, kind)(method, *args, **kwargs) for c in self.channels])

    def unary_unary(self, method: str, *args: Any, **kwargs: Any) -> Any:
        return self._pooled("unary_unary", method, *args, **kwargs)

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
            channel = grpc.insecure_channel(target, options=opts)
        else:
            channel = grpc.secure_channel(target, credentials, options=opts)
        return grpc.intercept_channel(channel, _Interceptor(timeout))

    if connections == 1:
        return one()
    return PooledChannel([one() for _ in range(connections)])
