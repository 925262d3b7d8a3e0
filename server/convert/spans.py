"""Span: proto -> store record (validated), for LogSpans and OTLP Export."""

from __future__ import annotations

import json
import re
from typing import Any

from mlgenai.client.convert import from_struct, from_value
from mlgenai.v1 import span_pb2
from server.validation import Violations
from store import limits
from store.domain import SPAN_ERROR, SPAN_OK, SPAN_UNSET, SpanRecord
from store.spans import session_from_attributes, usage_from_attributes, user_from_attributes

TRACE_ID = re.compile(r"tr-[0-9a-f]{32}")
SPAN_ID = re.compile(r"[0-9a-f]{16}")
STATUS = {
    span_pb2.SPAN_STATUS_CODE_UNSPECIFIED: SPAN_UNSET,
    span_pb2.SPAN_STATUS_CODE_OK: SPAN_OK,
    span_pb2.SPAN_STATUS_CODE_ERROR: SPAN_ERROR,
}
STATUS_TO_PROTO = {v: k for k, v in STATUS.items()}
INT64_MAX = 2**63 - 1
# NUL in JSON text: a \u0000 escape whose backslash is not itself escaped ("\\u0000" is text).
_NUL_ESCAPE = re.compile(r"(?<!\\)(?:\\\\)*\\u0000")


def check_trace_id(checks: Violations, field: str, trace_id: str) -> None:
    if not TRACE_ID.fullmatch(trace_id):
        checks.add(field, f"{trace_id[:50]!r} is not a trace id ('tr-' + 32 lowercase hex characters)")


def _value(message: Any, field: str) -> Any:
    return from_value(getattr(message, field)) if message.HasField(field) else None


def _check_span(checks: Violations, at: str, span: span_pb2.Span) -> None:
    check_trace_id(checks, f"{at}.trace_id", span.trace_id)
    if not SPAN_ID.fullmatch(span.span_id):
        checks.add(f"{at}.span_id", "16 lowercase hex characters")
    if span.parent_span_id and (not SPAN_ID.fullmatch(span.parent_span_id) or span.parent_span_id == span.span_id):
        checks.add(f"{at}.parent_span_id", "empty, or 16 lowercase hex characters other than span_id")
    checks.text(f"{at}.name", span.name, max_len=limits.SPAN_NAME_MAX, required=True)
    checks.text(f"{at}.span_type", span.span_type, max_len=limits.SPAN_TYPE_MAX)
    if not 0 < span.start_time_unix_nano <= INT64_MAX:
        checks.add(f"{at}.start_time_unix_nano", "required: nanoseconds since the Unix epoch")
    if span.end_time_unix_nano and span.end_time_unix_nano < span.start_time_unix_nano:
        checks.add(f"{at}.end_time_unix_nano", "0 (running) or not before start_time_unix_nano")
    if span.status.code not in STATUS:
        checks.add(f"{at}.status.code", "UNSET, OK or ERROR")
    checks.text(f"{at}.status.message", span.status.message, max_len=limits.TEXT_MAX)
    for key in span.attributes.fields:
        if len(key) > limits.METADATA_KEY_MAX:
            checks.add(f"{at}.attributes", f"keys are at most {limits.METADATA_KEY_MAX} characters")
            break
    for i, event in enumerate(span.events):
        checks.text(f"{at}.events[{i}].name", event.name, max_len=limits.SPAN_NAME_MAX, required=True)


def to_record(span: span_pb2.Span, checks: Violations, at: str) -> SpanRecord | None:
    """The store record of ``span``; problems go to ``checks`` (and None is returned)."""
    before = len(checks.items)
    _check_span(checks, at, span)
    if len(checks.items) > before:
        return None
    attributes = from_struct(span.attributes)
    payload = {
        "status_message": span.status.message,
        "inputs": _value(span, "inputs"),
        "outputs": _value(span, "outputs"),
        "attributes": attributes,
        "events": [
            {"name": e.name, "time_unix_nano": e.time_unix_nano, "attributes": from_struct(e.attributes)}
            for e in span.events
        ],
    }
    try:
        payload_json = json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False)
    except ValueError:  # NaN or ±Infinity in a Struct: JSON (and PostgreSQL) cannot hold them
        checks.add(at, "inputs, outputs, attributes and events must not contain NaN or Infinity")
        return None
    if "\\u0000" in payload_json and _NUL_ESCAPE.search(payload_json):
        checks.add(at, "inputs, outputs, attributes and events must not contain the NUL character")
        return None
    return SpanRecord(
        trace_id=span.trace_id,
        span_id=span.span_id,
        parent_span_id=span.parent_span_id,
        name=span.name,
        span_type=span.span_type or "UNKNOWN",
        start_time_unix_nano=span.start_time_unix_nano,
        end_time_unix_nano=span.end_time_unix_nano,
        status=STATUS[span.status.code],
        payload_json=payload_json,
        proto=span.SerializeToString(),
        usage=usage_from_attributes(attributes),
        session_id=session_from_attributes(attributes),
        user_id=user_from_attributes(attributes),
    )
