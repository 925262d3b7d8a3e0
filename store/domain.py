"""Domain objects returned by repositories: frozen dataclasses, never ORM instances.

Times are epoch milliseconds (``*_ms``); the server converts them to protobuf Timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

ACTIVE = "active"
DELETED = "deleted"

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: Mapping[str, str]
    create_time_ms: int
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a List/Search: the items and the token of the next page ("" at the end)."""

    items: list[T] = field(default_factory=list)
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What every List/Search takes: filter text, order items, page size and token."""

    filter: str = ""
    order_by: tuple[str, ...] = ()
    page_size: int = 100
    page_token: str = ""


# -- traces, spans, assessments (SPEC §3, §4) ---------------------------------------------------

TRACE_OK = "OK"
TRACE_ERROR = "ERROR"
TRACE_IN_PROGRESS = "IN_PROGRESS"

SPAN_UNSET = "UNSET"
SPAN_OK = "OK"
SPAN_ERROR = "ERROR"


@dataclass(slots=True)  # not frozen: one per span, and a frozen __init__ costs ~6x
class TokenUsage:
    input_tokens: int
    output_tokens: int
    total_tokens: int


@dataclass(slots=True)  # not frozen: one per span, and a frozen __init__ costs ~6x
class SpanRecord:
    """One span as the store takes and returns it. JSON-valued fields hold plain Python values.

    ``proto`` is the span serialized by the server (the wire form, returned as is by reads);
    the other fields are what the store indexes, filters and aggregates on.
    """

    trace_id: str
    span_id: str
    parent_span_id: str  # "" for the root span
    name: str
    span_type: str
    start_time_unix_nano: int
    end_time_unix_nano: int  # 0 while running
    status: str  # UNSET / OK / ERROR
    payload_json: str  # JSON text of {status_message, inputs, outputs, attributes, events}
    proto: bytes
    usage: TokenUsage | None = None
    session_id: str | None = None
    user_id: str | None = None


@dataclass(frozen=True, slots=True)
class TraceStart:
    """What StartTrace writes; None means "not given" (keep what is stored)."""

    trace_id: str
    experiment_id: str
    client_request_id: str | None = None
    request_time_ms: int | None = None
    execution_duration_ms: int | None = None
    state: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    metadata: Mapping[str, str] = field(default_factory=dict)
    tags: Mapping[str, str] = field(default_factory=dict)


@dataclass(slots=True)  # not frozen: one per row read, and a frozen __init__ costs ~6x
class AssessmentSource:
    source_type: str  # HUMAN / LLM_JUDGE / CODE
    source_id: str


@dataclass(slots=True)  # not frozen: one per row read, and a frozen __init__ costs ~6x
class Assessment:
    assessment_id: str
    trace_id: str
    span_id: str
    name: str
    kind: str  # feedback / expectation
    source: AssessmentSource
    value: object  # any JSON value (None for an error)
    error: Mapping[str, str] | None  # feedback error: error_code, error_message, stack_trace
    rationale: str
    metadata: Mapping[str, str]
    run_id: str
    overrides: str
    valid: bool
    create_time_ms: int
    update_time_ms: int


@dataclass(slots=True)  # not frozen: one per row read, and a frozen __init__ costs ~6x
class TraceInfo:
    trace_id: str
    experiment_id: str
    client_request_id: str
    request_time_ms: int
    execution_duration_ms: int | None
    state: str
    name: str
    request_preview: str
    response_preview: str
    session_id: str
    user_id: str
    model_id: str
    run_id: str
    token_usage: TokenUsage | None
    span_count: int
    metadata: Mapping[str, str]
    tags: Mapping[str, str]
    assessments: list[Assessment]
