"""Assessment: domain -> proto; proto -> store input (validated against SPEC §4's limits)."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from google.protobuf import struct_pb2

from mlgenai.client.convert import from_value, set_value
from mlgenai.v1 import assessment_pb2
from server.convert.common import set_timestamp
from server.convert.ids import check_run_id
from server.convert.spans import SPAN_ID, check_trace_id
from server.validation import Violations
from store import limits
from store.domain import Assessment, AssessmentSource
from store.repositories.assessments import EXPECTATION, FEEDBACK, AssessmentChanges, NewAssessment

NAME_MAX = 250
SOURCE_ID_MAX = 250
ERROR_CODE_MAX = 250
STACK_TRACE_MAX = 100_000
ASSESSMENT_ID = re.compile(r"a-[0-9a-f]{32}")

SOURCE_TYPES = {
    assessment_pb2.ASSESSMENT_SOURCE_TYPE_HUMAN: "HUMAN",
    assessment_pb2.ASSESSMENT_SOURCE_TYPE_LLM_JUDGE: "LLM_JUDGE",
    assessment_pb2.ASSESSMENT_SOURCE_TYPE_CODE: "CODE",
}
SOURCE_TYPES_TO_PROTO = {v: k for k, v in SOURCE_TYPES.items()}
# Paths of UpdateAssessment (SPEC §1.9): immutable ones are everything else in the message.
MUTABLE = frozenset({"name", FEEDBACK, EXPECTATION, "rationale", "metadata"})
OUTPUT_ONLY = frozenset({"assessment_id", "valid", "create_time", "update_time"})


def to_proto(a: Assessment) -> assessment_pb2.Assessment:
    msg = assessment_pb2.Assessment()
    fill_proto(msg, a)
    return msg


def fill_proto(msg: assessment_pb2.Assessment, a: Assessment) -> None:
    """Fill ``msg``, a new message, from ``a`` in place. Sub-messages built apart and copied in,
    and each assessment copied into its TraceInfo's list, made a TraceInfo with 600 assessments
    cost 2.4x as much (measured)."""
    msg.assessment_id = a.assessment_id
    msg.trace_id = a.trace_id
    msg.span_id = a.span_id
    msg.name = a.name
    source = msg.source
    source.source_type = SOURCE_TYPES_TO_PROTO[a.source.source_type]  # type: ignore[assignment]
    source.source_id = a.source.source_id
    msg.rationale = a.rationale
    if a.metadata:
        msg.metadata.update(a.metadata)
    msg.run_id = a.run_id
    msg.overrides = a.overrides
    msg.valid = a.valid
    set_timestamp(msg.create_time, a.create_time_ms)
    set_timestamp(msg.update_time, a.update_time_ms)
    if a.kind == EXPECTATION:
        set_value(msg.expectation.value, a.value)
    elif a.error is not None:
        msg.feedback.error.CopyFrom(assessment_pb2.AssessmentError(**a.error))
    else:
        set_value(msg.feedback.value, a.value)


# -- checks ------------------------------------------------------------------------------------


def check_assessment_id(checks: Violations, field: str, value: str) -> None:
    if not ASSESSMENT_ID.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not an assessment id ('a-' + 32 lowercase hex characters)")


def check_metadata(checks: Violations, field: str, metadata: Mapping[str, str]) -> None:
    if len(metadata) > limits.TAGS_PER_ENTITY_MAX:
        checks.add(field, f"at most {limits.TAGS_PER_ENTITY_MAX} keys (got {len(metadata)})")
        return
    for key, value in metadata.items():
        at = f"{field}[{key[:50]}]"
        if not key:
            checks.add(at, "metadata keys must not be empty")
        checks.text(at, key, max_len=limits.METADATA_KEY_MAX)
        checks.text(at, value, max_len=limits.METADATA_VALUE_MAX)


def _json_problem(value: Any) -> str | None:
    """Why a JSON value cannot be stored (NUL characters, non-finite numbers), or None."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if "\x00" in item:
                return "must not contain the NUL character"
        elif isinstance(item, float):
            if not math.isfinite(item):
                return "numbers must be finite (no NaN or Infinity)"
        elif isinstance(item, dict):
            if any("\x00" in k for k in item):
                return "object keys must not contain the NUL character"
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _json_value(checks: Violations, field: str, value: struct_pb2.Value) -> Any:
    converted = from_value(value)
    problem = _json_problem(converted)
    if problem is not None:
        checks.add(field, problem)
    return converted


def _is_null(message: Any) -> bool:
    return not message.HasField("value") or message.value.WhichOneof("kind") in (None, "null_value")


def _error(checks: Violations, at: str, error: assessment_pb2.AssessmentError) -> dict[str, str]:
    checks.text(f"{at}.error_code", error.error_code, max_len=ERROR_CODE_MAX)
    checks.text(f"{at}.error_message", error.error_message, max_len=limits.TEXT_MAX)
    checks.text(f"{at}.stack_trace", error.stack_trace, max_len=STACK_TRACE_MAX)
    return {"error_code": error.error_code, "error_message": error.error_message, "stack_trace": error.stack_trace}


def value_of(
    checks: Violations, at: str, msg: assessment_pb2.Assessment, kind: str
) -> tuple[object, dict[str, str] | None]:
    """The (value, error) of ``msg``'s ``kind`` part (``at`` is the message's path)."""
    if kind == EXPECTATION:
        if _is_null(msg.expectation):
            checks.add(f"{at}.expectation.value", "required: an expectation has a (non-null) value")
            return None, None
        return _json_value(checks, f"{at}.expectation.value", msg.expectation.value), None
    feedback = msg.feedback
    has_value, has_error = not _is_null(feedback), feedback.HasField("error")
    if has_value and has_error:
        checks.add(f"{at}.feedback", "a value or an error, not both")
    elif has_error:
        return None, _error(checks, f"{at}.feedback.error", feedback.error)
    elif has_value:
        return _json_value(checks, f"{at}.feedback.value", feedback.value), None
    else:
        checks.add(f"{at}.feedback.value", "required: a (non-null) value, or feedback.error when the judge failed")
    return None, None


def _check_name(checks: Violations, field: str, name: str) -> None:
    checks.text(field, name, max_len=NAME_MAX, required=True, blank_ok=False)


# -- proto -> store input ----------------------------------------------------------------------


def to_new(msg: assessment_pb2.Assessment, checks: Violations, at: str) -> NewAssessment | None:
    """The store input of CreateAssessment; problems go to ``checks`` (and None is returned)."""
    before = len(checks.items)
    check_trace_id(checks, f"{at}.trace_id", msg.trace_id)
    if msg.span_id and not SPAN_ID.fullmatch(msg.span_id):
        checks.add(f"{at}.span_id", "empty, or 16 lowercase hex characters")
    _check_name(checks, f"{at}.name", msg.name)
    if not msg.HasField("source"):
        checks.add(f"{at}.source", "required: source_type HUMAN, LLM_JUDGE or CODE")
    elif msg.source.source_type not in SOURCE_TYPES:
        checks.add(f"{at}.source.source_type", "HUMAN, LLM_JUDGE or CODE")
    checks.text(f"{at}.source.source_id", msg.source.source_id, max_len=SOURCE_ID_MAX)
    kind = msg.WhichOneof("value")
    value: object = None
    error: dict[str, str] | None = None
    if kind is None:
        checks.add(f"{at}.feedback", "required: feedback or expectation (exactly one)")
    else:
        value, error = value_of(checks, at, msg, kind)
    checks.text(f"{at}.rationale", msg.rationale, max_len=limits.TEXT_MAX)
    check_metadata(checks, f"{at}.metadata", msg.metadata)
    if msg.run_id:
        check_run_id(checks, f"{at}.run_id", msg.run_id)
    if msg.overrides:
        check_assessment_id(checks, f"{at}.overrides", msg.overrides)
    if len(checks.items) > before or kind is None:
        return None
    return NewAssessment(
        trace_id=msg.trace_id,
        name=msg.name,
        kind=kind,
        source=AssessmentSource(SOURCE_TYPES[msg.source.source_type], msg.source.source_id),
        value=value,
        error=error,
        span_id=msg.span_id,
        rationale=msg.rationale,
        metadata=dict(msg.metadata),
        run_id=msg.run_id,
        overrides=msg.overrides,
    )


def _immutable_sent(msg: assessment_pb2.Assessment) -> dict[str, str]:
    """Immutable fields set in an update without a mask: they must match what is stored."""
    sent = {p: getattr(msg, p) for p in ("trace_id", "span_id", "run_id", "overrides") if getattr(msg, p)}
    if msg.HasField("source"):
        sent["source.source_type"] = SOURCE_TYPES.get(msg.source.source_type, str(msg.source.source_type))
        sent["source.source_id"] = msg.source.source_id
    return sent


def to_changes(
    msg: assessment_pb2.Assessment, paths: set[str], checks: Violations, *, masked: bool
) -> AssessmentChanges:
    """The store input of UpdateAssessment for the mutable ``paths``; problems go to ``checks``."""
    if FEEDBACK in paths and EXPECTATION in paths:
        checks.add("update_mask", "feedback and expectation cannot both change: an assessment is one or the other")
        return AssessmentChanges()
    if "name" in paths:
        _check_name(checks, "assessment.name", msg.name)
    if "rationale" in paths:
        checks.text("assessment.rationale", msg.rationale, max_len=limits.TEXT_MAX)
    if "metadata" in paths:
        check_metadata(checks, "assessment.metadata", msg.metadata)
    kind = next((k for k in (FEEDBACK, EXPECTATION) if k in paths), None)
    value, error = value_of(checks, "assessment", msg, kind) if kind else (None, None)
    return AssessmentChanges(
        name=msg.name if "name" in paths else None,
        kind=kind,
        value=value,
        error=error,
        rationale=msg.rationale if "rationale" in paths else None,
        metadata=dict(msg.metadata) if "metadata" in paths else None,
        immutable={} if masked else _immutable_sent(msg),
    )
