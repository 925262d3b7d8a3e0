"""Opening a channel to mlgenai: message size, retries, deadlines, request ids, error decoding.

Retries are gRPC's own (a service config with a ``retryPolicy``): calls that fail with
UNAVAILABLE (server restarting, database briefly unreachable) are re-sent with exponential
backoff. That is safe for every RPC because the client interceptor gives each write that has a
``request_id`` field and none set a fresh UUID, so the server recognises a re-sent call and
returns the first call's result instead of writing twice (SPEC §1.8).
"""

from __future__ import annotations

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


def open_channel(
    target: str,
    *,
    timeout: float | None = 30.0,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
) -> grpc.Channel:
    """A channel to ``target`` (``host:port``) with mlgenai's defaults.

    ``timeout`` is the default deadline in seconds of a call that sets none (None: no default).
    ``retry=None`` disables retries.
    """
    opts: list[tuple[str, Any]] = [
        ("grpc.max_send_message_length", max_message_bytes),
        ("grpc.max_receive_message_length", max_message_bytes),
        ("grpc.enable_retries", 1 if retry else 0),
    ]
    if retry is not None:
        opts.append(("grpc.service_config", retry.service_config()))
    opts.extend(options)
    if credentials is None:
        channel = grpc.insecure_channel(target, options=opts)
    else:
        channel = grpc.secure_channel(target, credentials, options=opts)
    return grpc.intercept_channel(channel, _Interceptor(timeout))
