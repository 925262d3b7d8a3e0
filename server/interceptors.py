"""The one server interceptor: error mapping (SPEC §1.7) and one log line per call (§10).

For every unary call it:
* takes the caller's ``x-request-id`` metadata (or makes one) to tie log lines together;
* turns ``store.errors`` exceptions into ``google.rpc.Status`` (ErrorInfo + BadRequest);
* turns anything else into INTERNAL with a generic message, logging the traceback;
* logs method, status code, duration, peer and request id.

Servicers therefore contain no try/except for domain errors.
"""

from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from typing import Any

import grpc
from grpc_status import rpc_status

from server.errors import internal_status, to_status
from store.errors import StoreError

log = logging.getLogger("mlgenai.rpc")

Behavior = Callable[[Any, grpc.ServicerContext], Any]

# Request ids the server makes for calls without x-request-id: unique per process start,
# cheaper than uuid4 on every call (which showed up at ~5% of a GetExperiment profile).
_PREFIX = f"{os.getpid():x}{os.urandom(3).hex()}-"
_COUNTER = itertools.count(1)


def _request_id(context: grpc.ServicerContext) -> str:
    for key, value in context.invocation_metadata() or ():
        if key == "x-request-id":
            return str(value)[:64]
    return f"{_PREFIX}{next(_COUNTER):x}"


def _wrap(behavior: Behavior, method: str) -> Behavior:
    def handle(request: Any, context: grpc.ServicerContext) -> Any:
        start = time.perf_counter()
        request_id = _request_id(context)
        code = "OK"
        try:
            return behavior(request, context)
        except StoreError as err:
            code = err.status
            context.abort_with_status(rpc_status.to_status(to_status(err)))
        except Exception:
            status_code = getattr(context, "code", lambda: None)()  # set when a servicer aborted itself
            if status_code is not None and status_code != grpc.StatusCode.OK:
                code = status_code.name
                raise
            code = "INTERNAL"
            log.exception("unhandled error", extra={"method": method, "request_id": request_id})
            context.abort_with_status(rpc_status.to_status(internal_status(request_id)))
        finally:
            if log.isEnabledFor(logging.INFO):
                # The record made directly: ``log.info`` would also walk the stack for a caller
                # that every access line shares (2 µs of the ~9 a line costs).
                extra = {
                    "method": method,
                    "code": code,
                    "duration_ms": round((time.perf_counter() - start) * 1000, 3),
                    "peer": context.peer(),
                    "request_id": request_id,
                }
                log.handle(log.makeRecord(log.name, logging.INFO, __file__, 0, "rpc", (), None, extra=extra))

    return handle


class CallInterceptor(grpc.ServerInterceptor):  # type: ignore[misc]
    def __init__(self) -> None:
        self._cache: dict[tuple[str, int], Any] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Any],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> Any:
        handler = continuation(handler_call_details)
        if handler is None or handler.unary_unary is None:
            return handler
        method: str = handler_call_details.method
        key = (method, id(handler))
        wrapped = self._cache.get(key)
        if wrapped is None:
            wrapped = handler._replace(unary_unary=_wrap(handler.unary_unary, method))
            if len(self._cache) > 4096:  # handlers made per call would otherwise pile up
                self._cache.clear()
            self._cache[key] = wrapped
        return wrapped
