"""Span: proto -> store record (validated), for LogSpans and OTLP Export.

LogSpans reads its request's bytes with the C module (``read_log_spans``): each span comes out
as a ``PlainSpan`` tuple whose last item is the span's own bytes, stored as they came (the same
message a reader parses). Before, grpc parsed the request, each span was serialized again and
its fields read one attribute at a time: ~24 against ~11 µs a span of ``make bench``. A span
the module cannot read as a parser would (a number that is not finite, a message field sent
twice, which a parser merges) comes as its bytes and is parsed into a ``Span``; so is every span
where the module was not built. ``to_record`` converts such a ``Span``.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from typing import Any

import orjson
from google.protobuf.message import DecodeError

from mlgenai.v1 import span_pb2, trace_service_pb2
from server.convert.values import Fields, NotFinite, module, struct_of
from server.registration import malformed
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


_EXACT = 2**53  # integral doubles up to here are read as int (JSON has no 1.0 vs 1)
_VALUES = Fields(span_pb2.Span.DESCRIPTOR, "inputs", "outputs", "attributes")  # read at once
_C = module()

# (trace_id, span_id, parent_span_id, name, span_type, start, end, status code, status message,
#  inputs, outputs, attributes, events [(name, time_unix_nano, attributes)], serialized Span)
PlainSpan = tuple[
    str, str, str, str, str, int, int, int, str, Any, Any, dict[str, Any], list[tuple[str, int, dict[str, Any]]], bytes
]


def read_log_spans(data: bytes) -> tuple[str, list[PlainSpan | span_pb2.Span]]:
    """A serialized LogSpansRequest's experiment id and spans (INVALID_ARGUMENT if it is none)."""
    try:
        if _C is None:
            request = trace_service_pb2.LogSpansRequest.FromString(data)
            return request.experiment_id, list(request.spans)
        experiment_id, spans = _C.log_spans(data)
        return experiment_id, [s if type(s) is tuple else span_pb2.Span.FromString(s) for s in spans]
    except (ValueError, DecodeError) as exc:  # UnicodeDecodeError too
        raise malformed(trace_service_pb2.LogSpansRequest.DESCRIPTOR.full_name, exc) from None


PARENT_RULE = "empty, or 16 lowercase hex characters other than span_id"


def _check_ids(checks: Violations, at: str, trace_id: str, span_id: str, parent: str) -> None:
    """LogSpans' checks of a span's ids (``check_fields`` checks the rest)."""
    if not TRACE_ID.fullmatch(trace_id):
        check_trace_id(checks, f"{at}.trace_id", trace_id)
    if not SPAN_ID.fullmatch(span_id):
        checks.add(f"{at}.span_id", "16 lowercase hex characters")
    if parent and (not SPAN_ID.fullmatch(parent) or parent == span_id):
        checks.add(f"{at}.parent_span_id", PARENT_RULE)


_NAME_MAX, _TYPE_MAX, _TEXT_MAX = limits.SPAN_NAME_MAX, limits.SPAN_TYPE_MAX, limits.TEXT_MAX
_KEY_MAX = limits.METADATA_KEY_MAX


def _fine_text(value: str, max_len: int) -> bool:
    return len(value) <= max_len and "\x00" not in value


def check_fields(
    checks: Violations,
    at: str,
    name: str,
    span_type: str,
    start: int,
    end: int,
    status_code: int,
    status_message: str,
    attribute_keys: Iterable[str],
    event_names: Sequence[str],
) -> None:
    """A span's checks besides its ids (LogSpans and OTLP Export). A span that passes them all
    is decided without building a field name or calling a function per text (the common case:
    ~2.5 µs, against ~10 µs otherwise)."""
    if (
        name
        and len(name) <= _NAME_MAX
        and "\x00" not in name
        and len(span_type) <= _TYPE_MAX
        and "\x00" not in span_type
        and 0 < start <= INT64_MAX
        and (not end or end >= start)
        and status_code in STATUS
        and len(status_message) <= _TEXT_MAX
        and "\x00" not in status_message
        and max(map(len, attribute_keys), default=0) <= _KEY_MAX
        and (not event_names or all(e and _fine_text(e, _NAME_MAX) for e in event_names))
    ):
        return
    checks.text(f"{at}.name", name, max_len=limits.SPAN_NAME_MAX, required=True)
    checks.text(f"{at}.span_type", span_type, max_len=limits.SPAN_TYPE_MAX)
    if not 0 < start <= INT64_MAX:
        checks.add(f"{at}.start_time_unix_nano", "required: nanoseconds since the Unix epoch")
    if end and end < start:
        checks.add(f"{at}.end_time_unix_nano", "0 (running) or not before start_time_unix_nano")
    if status_code not in STATUS:
        checks.add(f"{at}.status.code", "UNSET, OK or ERROR")
    checks.text(f"{at}.status.message", status_message, max_len=limits.TEXT_MAX)
    for key in attribute_keys:
        if len(key) > limits.METADATA_KEY_MAX:
            checks.add(f"{at}.attributes", f"keys are at most {limits.METADATA_KEY_MAX} characters")
            break
    for i, event_name in enumerate(event_names):
        checks.text(f"{at}.events[{i}].name", event_name, max_len=limits.SPAN_NAME_MAX, required=True)


def read_back(value: Any) -> Any:
    """A JSON value as ``server.convert.values`` reads it back from a Struct (integral floats
    become ints, ints beyond 2**53 floats).
    Dispatch on the exact type, strings first: they are most attribute values (2.4 against
    5.4 µs for the attributes of a benchmark span with ``isinstance`` chains)."""
    kind = type(value)
    if kind is str or value is None or kind is bool:
        return value
    if kind is dict:
        return {k: v if type(v) is str else read_back(v) for k, v in value.items()}
    if kind is int:
        return value if -_EXACT <= value <= _EXACT else float(value)  # a Struct holds doubles
    if kind is float:
        return int(value) if value.is_integer() and -_EXACT <= value <= _EXACT else value
    if kind is list:
        return [read_back(v) for v in value]
    return value


def to_record(span: span_pb2.Span, checks: Violations, at: str) -> SpanRecord | None:
    """The store record of a LogSpans ``span`` message; problems go to ``checks`` (and None is
    returned). Each field is read from the message once (a read costs ~0.1-0.3 µs)."""
    proto = span.SerializeToString()
    span_events = span.events
    status = span.status
    try:
        inputs, outputs, attributes = _VALUES.of(span, proto)
        events = [(e.name, e.time_unix_nano, struct_of(e.attributes)) for e in span_events] if span_events else []
    except NotFinite:
        before = len(checks.items)
        _check_ids(checks, at, span.trace_id, span.span_id, span.parent_span_id)
        check_fields(
            checks, at, span.name, span.span_type, span.start_time_unix_nano, span.end_time_unix_nano,
            status.code, status.message, span.attributes.fields, [e.name for e in span_events],
        )  # fmt: skip
        if len(checks.items) == before:
            checks.add(at, "inputs, outputs, attributes and events must not contain NaN or Infinity")
        return None
    return plain_record(
        (
            span.trace_id, span.span_id, span.parent_span_id, span.name, span.span_type,
            span.start_time_unix_nano, span.end_time_unix_nano, status.code, status.message,
            inputs, outputs, attributes, events, proto,
        ),
        checks,
        at,
    )  # fmt: skip


def plain_record(span: PlainSpan, checks: Violations, at: str) -> SpanRecord | None:
    """The store record of a LogSpans span read by ``read_log_spans`` (see ``to_record``)."""
    trace_id, span_id, parent, name, span_type, start, end, code, message, inputs, outputs, attributes, events, _ = span
    before = len(checks.items)
    _check_ids(checks, at, trace_id, span_id, parent)
    check_fields(
        checks, at, name, span_type, start, end, code, message, attributes, [e[0] for e in events] if events else ()
    )
    if len(checks.items) > before:
        return None
    return record_of(
        checks, at, trace_id, span_id, parent, name, span_type, start, end, code, message,
        attributes, inputs, outputs, events, span[13],
    )  # fmt: skip


def record_of(
    checks: Violations,
    at: str,
    trace_id: str,
    span_id: str,
    parent_span_id: str,
    name: str,
    span_type: str,
    start: int,
    end: int,
    status_code: int,
    status_message: str,
    attributes: dict[str, Any],
    inputs: Any,
    outputs: Any,
    events: list[tuple[str, int, dict[str, Any]]],
    proto: bytes,
) -> SpanRecord | None:
    """The store record of a checked span (``check_fields``), from its values as plain Python
    values (as read back from its ``Span``: see ``read_back``) and its serialized ``Span``."""
    payload = {
        "status_message": status_message,
        "inputs": inputs,
        "outputs": outputs,
        "attributes": attributes,
        "events": [{"name": n, "time_unix_nano": t, "attributes": a} for n, t, a in events] if events else [],
    }
    # orjson: ~10x faster than json.dumps here; same compact form, UTF-8 unescaped.
    payload_json = orjson.dumps(payload).decode()
    if "\\u0000" in payload_json and _NUL_ESCAPE.search(payload_json):
        checks.add(at, "inputs, outputs, attributes and events must not contain the NUL character")
        return None
    return SpanRecord(
        trace_id, span_id, parent_span_id, name, span_type or "UNKNOWN", start, end, STATUS[status_code],  # type: ignore[index]
        payload_json, proto, usage_from_attributes(attributes), session_from_attributes(attributes),
        user_from_attributes(attributes),
    )  # fmt: skip
