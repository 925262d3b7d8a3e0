"""``store.errors`` exceptions -> ``google.rpc.Status`` with ``ErrorInfo`` and ``BadRequest``."""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2

from store.errors import InvalidArgument, StoreError

DOMAIN = "mlgenai"

_CODES: dict[str, int] = {
    "INVALID_ARGUMENT": code_pb2.INVALID_ARGUMENT,
    "NOT_FOUND": code_pb2.NOT_FOUND,
    "ALREADY_EXISTS": code_pb2.ALREADY_EXISTS,
    "FAILED_PRECONDITION": code_pb2.FAILED_PRECONDITION,
    "ABORTED": code_pb2.ABORTED,
    "RESOURCE_EXHAUSTED": code_pb2.RESOURCE_EXHAUSTED,
    "UNAVAILABLE": code_pb2.UNAVAILABLE,
    "DEADLINE_EXCEEDED": code_pb2.DEADLINE_EXCEEDED,
}

GRPC_CODES: dict[int, grpc.StatusCode] = {c.value[0]: c for c in grpc.StatusCode}


def _pack(message: object) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)  # type: ignore[arg-type]
    return packed


def to_status(err: StoreError) -> status_pb2.Status:
    """The rich status for a domain error."""
    status = status_pb2.Status(code=_CODES.get(err.status, code_pb2.UNKNOWN), message=err.message)
    status.details.append(_pack(error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)))
    if isinstance(err, InvalidArgument) and err.violations:
        bad = error_details_pb2.BadRequest(
            field_violations=[
                error_details_pb2.BadRequest.FieldViolation(field=v.field, description=v.description)
                for v in err.violations
            ]
        )
        status.details.append(_pack(bad))
    return status


def internal_status(request_id: str) -> status_pb2.Status:
    """What a caller sees for a bug: a generic message and the request id to find the log line."""
    status = status_pb2.Status(
        code=code_pb2.INTERNAL, message=f"internal error (request id {request_id}); the server log has details"
    )
    status.details.append(
        _pack(error_details_pb2.ErrorInfo(reason="INTERNAL", domain=DOMAIN, metadata={"request_id": request_id}))
    )
    return status
