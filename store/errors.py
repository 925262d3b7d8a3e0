"""The one exception vocabulary of the service.

Every layer raises these; the gRPC interceptor in ``server/interceptors.py`` is the only place
that turns them into ``google.rpc.Status`` (code + ``ErrorInfo`` + ``BadRequest``). Nothing here
knows about gRPC: each class names the status it stands for by a plain string.

``reason`` is an UPPER_SNAKE machine-readable cause (``ErrorInfo.reason``); ``metadata`` carries
the identifiers the message talks about (``ErrorInfo.metadata``).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class FieldViolation:
    """One invalid request field: ``field`` is a dotted path (``tags[env]``, ``filter``)."""

    field: str
    description: str


class StoreError(Exception):
    """Base class: a failure that is the caller's business, not a bug."""

    status: str = "UNKNOWN"

    def __init__(self, reason: str, message: str, metadata: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata: dict[str, str] = dict(metadata or {})

    def __str__(self) -> str:
        return self.message


class NotFound(StoreError):
    status = "NOT_FOUND"


class AlreadyExists(StoreError):
    status = "ALREADY_EXISTS"


class FailedPrecondition(StoreError):
    status = "FAILED_PRECONDITION"


class Aborted(StoreError):
    status = "ABORTED"


class Unavailable(StoreError):
    status = "UNAVAILABLE"


class ResourceExhausted(StoreError):
    status = "RESOURCE_EXHAUSTED"


class InvalidArgument(StoreError):
    """Bad input. Carries one ``FieldViolation`` per offending field (``BadRequest``)."""

    status = "INVALID_ARGUMENT"

    def __init__(
        self,
        reason: str,
        message: str,
        violations: Iterable[FieldViolation] = (),
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(reason, message, metadata)
        self.violations: tuple[FieldViolation, ...] = tuple(violations)

    @classmethod
    def field(cls, field: str, description: str, reason: str = "INVALID_FIELD") -> InvalidArgument:
        """The common case: one field is wrong."""
        return cls(reason, f"{field}: {description}", [FieldViolation(field, description)])
