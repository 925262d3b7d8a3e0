"""Errors of the mlgenai service, decoded into Python exceptions.

Every failed call raises a subclass of :class:`MlgenaiError` that carries the gRPC status code,
the ``google.rpc.ErrorInfo`` reason and metadata, and the ``google.rpc.BadRequest`` field
violations. The classes also subclass ``grpc.RpcError`` (with ``code()`` and ``details()``),
so code written against plain gRPC keeps working.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status


@dataclass(frozen=True)
class FieldViolation:
    field: str
    description: str


@dataclass
class _Detail:
    reason: str = ""
    domain: str = ""
    metadata: dict[str, str] = field(default_factory=dict)
    violations: list[FieldViolation] = field(default_factory=list)


class MlgenaiError(grpc.RpcError):
    """A call failed. ``reason`` is the machine-readable cause (e.g. ``EXPERIMENT_NOT_FOUND``)."""

    def __init__(
        self,
        status_code: grpc.StatusCode,
        message: str,
        reason: str = "",
        metadata: dict[str, str] | None = None,
        violations: list[FieldViolation] | None = None,
        domain: str = "",
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.message = message
        self.reason = reason
        self.domain = domain
        self.metadata = metadata or {}
        self.violations = violations or []

    def code(self) -> grpc.StatusCode:
        return self.status_code

    def details(self) -> str:
        return self.message

    def __str__(self) -> str:
        reason = f" [{self.reason}]" if self.reason else ""
        return f"{self.status_code.name}{reason}: {self.message}"


class InvalidArgumentError(MlgenaiError):
    pass


class NotFoundError(MlgenaiError):
    pass


class AlreadyExistsError(MlgenaiError):
    pass


class FailedPreconditionError(MlgenaiError):
    pass


class AbortedError(MlgenaiError):
    pass


class ResourceExhaustedError(MlgenaiError):
    pass


class UnavailableError(MlgenaiError):
    pass


class DeadlineExceededError(MlgenaiError):
    pass


class InternalError(MlgenaiError):
    pass


_BY_CODE: dict[grpc.StatusCode, type[MlgenaiError]] = {
    grpc.StatusCode.INVALID_ARGUMENT: InvalidArgumentError,
    grpc.StatusCode.NOT_FOUND: NotFoundError,
    grpc.StatusCode.ALREADY_EXISTS: AlreadyExistsError,
    grpc.StatusCode.FAILED_PRECONDITION: FailedPreconditionError,
    grpc.StatusCode.ABORTED: AbortedError,
    grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhaustedError,
    grpc.StatusCode.UNAVAILABLE: UnavailableError,
    grpc.StatusCode.DEADLINE_EXCEEDED: DeadlineExceededError,
    grpc.StatusCode.INTERNAL: InternalError,
}


def _decode_details(err: grpc.Call) -> _Detail:
    out = _Detail()
    status = rpc_status.from_call(err)
    if status is None:
        return out
    for any_ in status.details:
        if any_.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            any_.Unpack(info)
            out.reason, out.domain, out.metadata = info.reason, info.domain, dict(info.metadata)
        elif any_.Is(error_details_pb2.BadRequest.DESCRIPTOR):
            bad = error_details_pb2.BadRequest()
            any_.Unpack(bad)
            out.violations = [FieldViolation(v.field, v.description) for v in bad.field_violations]
    return out


def from_rpc_error(err: grpc.RpcError) -> MlgenaiError:
    """Decode a ``grpc.RpcError`` raised by a stub into the matching :class:`MlgenaiError`."""
    if isinstance(err, MlgenaiError):
        return err
    if not isinstance(err, grpc.Call):  # e.g. a bare RpcError from a custom channel
        return InternalError(grpc.StatusCode.UNKNOWN, str(err))
    code = err.code()
    try:
        detail = _decode_details(err)
    except ValueError:  # grpc-status: code/message in the trailer disagree with the status
        detail = _Detail()
    cls = _BY_CODE.get(code, MlgenaiError)
    return cls(code, err.details() or "", detail.reason, detail.metadata, detail.violations, detail.domain)
