"""Tables of the trace aggregate (SPEC §3, §4): traces, their tags and metadata, spans,
assessments. Trace times are epoch milliseconds, span times epoch nanoseconds (BIGINT).

Spans live in their own table keyed (trace_id, span_id) with the columns filters need (name,
type, status, times, token counts), the rest of the span as one JSON document for filters,
and the serialized protobuf span that reads return (see ``store/repositories/trace_reads.py``).
Assessments carry typed copies of their value (`value_number`, `value_string`, `value_bool`)
so `feedback.<name> > 0.5` is an indexed comparison, not JSON parsing.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, Float, ForeignKey, Index, Integer, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import AutoIncrementId, Base, JsonDocument

TRACE_ID_LEN = 35  # "tr-" + 32 hex


class TraceRow(Base):
    __tablename__ = "traces"

    trace_id: Mapped[str] = mapped_column(String(TRACE_ID_LEN), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(AutoIncrementId, ForeignKey("experiments.experiment_id"))
    client_request_id: Mapped[str | None] = mapped_column(String(250))
    request_time: Mapped[int] = mapped_column(BigInteger)  # ms
    execution_duration: Mapped[int | None] = mapped_column(BigInteger)  # ms
    state: Mapped[str] = mapped_column(String(16))  # OK / ERROR / IN_PROGRESS
    name: Mapped[str | None] = mapped_column(Text)
    request_preview: Mapped[str | None] = mapped_column(String(1000))
    response_preview: Mapped[str | None] = mapped_column(String(1000))
    session_id: Mapped[str | None] = mapped_column(String(250))
    user_id: Mapped[str | None] = mapped_column(String(250))
    model_id: Mapped[str | None] = mapped_column(String(250))
    run_id: Mapped[str | None] = mapped_column(String(250))
    input_tokens: Mapped[int | None] = mapped_column(BigInteger)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger)
    total_tokens: Mapped[int | None] = mapped_column(BigInteger)
    span_count: Mapped[int] = mapped_column(Integer, default=0)
    # What the caller set (StartTrace/EndTrace) and spans therefore no longer recompute.
    request_time_from_caller: Mapped[bool] = mapped_column(Boolean, default=False)
    duration_from_caller: Mapped[bool] = mapped_column(Boolean, default=False)
    state_from_caller: Mapped[bool] = mapped_column(Boolean, default=False)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        # The default search order within experiments, and the keyset cursor on it.
        Index(None, "experiment_id", "request_time", "trace_id"),
        Index(None, "experiment_id", "session_id"),
        Index(None, "experiment_id", "model_id"),
        Index(None, "run_id"),
        Index(None, "client_request_id"),
    )


class TraceTagRow(Base):
    __tablename__ = "trace_tags"

    trace_id: Mapped[str] = mapped_column(
        String(TRACE_ID_LEN), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "value", postgresql_using="hash"),)


class TraceMetadataRow(Base):
    __tablename__ = "trace_metadata"

    trace_id: Mapped[str] = mapped_column(
        String(TRACE_ID_LEN), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "value", postgresql_using="hash"),)


class SpanRow(Base):
    __tablename__ = "spans"

    # No foreign key to traces: PostgreSQL checks one per inserted row (a lookup of the trace
    # row each, then a lock on it), and LogSpans writes hundreds of spans per call. Every span
    # write holds its trace row's lock until commit (the row it inserted, or the one it locked:
    # ``TraceRepository.log_spans``), so the trace exists while its spans are written, and
    # DeleteTraces deletes the spans itself under that lock.
    trace_id: Mapped[str] = mapped_column(String(TRACE_ID_LEN), primary_key=True)
    span_id: Mapped[str] = mapped_column(String(16), primary_key=True)
    parent_span_id: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(1000))
    span_type: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(8))  # UNSET / OK / ERROR
    start_time_unix_nano: Mapped[int] = mapped_column(BigInteger)
    end_time_unix_nano: Mapped[int | None] = mapped_column(BigInteger)
    input_tokens: Mapped[int | None] = mapped_column(BigInteger)
    output_tokens: Mapped[int | None] = mapped_column(BigInteger)
    total_tokens: Mapped[int | None] = mapped_column(BigInteger)
    # {"status_message", "inputs", "outputs", "attributes", "events"}: what filters read.
    payload: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    # The span as the server serialized it (mlgenai.v1.Span): what reads return, unconverted.
    proto: Mapped[bytes] = mapped_column(LargeBinary)

    # Reads of spans name their traces: the primary key finds them (no (trace_id, start) index).
    __table_args__ = (
        Index(None, "name", "trace_id"),
        Index(None, "span_type", "trace_id"),
    )


class AssessmentRow(Base):
    __tablename__ = "assessments"

    assessment_id: Mapped[str] = mapped_column(String(34), primary_key=True)
    trace_id: Mapped[str] = mapped_column(String(TRACE_ID_LEN), ForeignKey("traces.trace_id", ondelete="CASCADE"))
    span_id: Mapped[str | None] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(250))
    kind: Mapped[str] = mapped_column(String(12))  # feedback / expectation
    source_type: Mapped[str] = mapped_column(String(12))  # HUMAN / LLM_JUDGE / CODE
    source_id: Mapped[str | None] = mapped_column(String(250))
    value: Mapped[Any] = mapped_column(JsonDocument, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JsonDocument, nullable=True)
    # Typed copies of `value` for filters: a true number, a string, a boolean.
    value_number: Mapped[float | None] = mapped_column(Float)
    value_string: Mapped[str | None] = mapped_column(Text)
    value_bool: Mapped[bool | None] = mapped_column(Boolean)
    rationale: Mapped[str | None] = mapped_column(Text)
    meta: Mapped[dict[str, str]] = mapped_column("metadata", JsonDocument)
    run_id: Mapped[str | None] = mapped_column(String(32))
    overrides: Mapped[str | None] = mapped_column(String(34))
    valid: Mapped[bool] = mapped_column(Boolean)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "trace_id", "create_time"),
        # feedback.<name> / expectation.<name> filters: valid assessments of a name per trace.
        Index(None, "name", "kind", "valid", "trace_id"),
        Index(None, "run_id", "name"),
        Index(None, "overrides"),
    )
