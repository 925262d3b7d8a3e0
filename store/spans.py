"""Ingestion rules for traces and spans (SPEC §3.1–§3.3), as pure functions.

* Token usage of a span comes from its attribute ``mlflow.chat.tokenUsage`` (an object, or the
  JSON text of one, as OpenTelemetry exporters send it): ``input_tokens``, ``output_tokens``,
  ``total_tokens`` (default: their sum). A trace's usage sums its spans' usage, skipping a
  span when one of its ancestors also reports usage: frameworks put the total of an agent's
  LLM calls on the agent span as well, and counting both would double it (MLflow does the same).
* Session and user come from the span attributes ``session.id`` (or ``gen_ai.conversation.id``)
  and ``user.id`` unless the trace's metadata names them.
* Previews are the root span's inputs/outputs: strings as they are, anything else as compact
  JSON with sorted keys; at most 1,000 characters, cut ones end in "...".
* Reserved metadata keys are promoted to TraceInfo fields and still returned as metadata.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping
from typing import Any

from store.domain import TokenUsage

PREVIEW_MAX = 1_000
TOKEN_USAGE_ATTRIBUTE = "mlflow.chat.tokenUsage"
TRACE_NAME_TAG = "mlflow.traceName"
# metadata key -> TraceInfo field it is promoted to
PROMOTED_METADATA = {
    "mlflow.trace.session": "session_id",
    "mlflow.trace.user": "user_id",
    "mlflow.modelId": "model_id",
    "mlflow.sourceRun": "run_id",
}
SESSION_ATTRIBUTES = ("session.id", "gen_ai.conversation.id")
USER_ATTRIBUTE = "user.id"
PROMOTED_MAX = 250


def _count(raw: Any) -> int | None:
    if isinstance(raw, bool) or raw is None:
        return None
    if isinstance(raw, int):
        return raw if raw >= 0 else None
    if isinstance(raw, float) and math.isfinite(raw) and raw >= 0 and raw.is_integer():
        return int(raw)
    return None


def usage_from_attributes(attributes: Mapping[str, Any]) -> TokenUsage | None:
    """The span's own token usage, or None when it reports none (or nonsense)."""
    raw = attributes.get(TOKEN_USAGE_ATTRIBUTE)
    if raw is None:  # most spans: decided before the isinstance checks (an ABC's is slow)
        return None
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError:
            return None
    if not isinstance(raw, Mapping):
        return None
    inp, out, total = (_count(raw.get(k)) for k in ("input_tokens", "output_tokens", "total_tokens"))
    if inp is None and out is None and total is None:
        return None
    inp, out = inp or 0, out or 0
    return TokenUsage(inp, out, total if total is not None else inp + out)


def _text(raw: Any) -> str | None:
    if isinstance(raw, str) and raw and "\x00" not in raw:
        return raw[:PROMOTED_MAX]
    return None


def session_from_attributes(attributes: Mapping[str, Any]) -> str | None:
    for key in SESSION_ATTRIBUTES:
        raw = attributes.get(key)
        found = _text(raw) if raw is not None else None
        if found:
            return found
    return None


def user_from_attributes(attributes: Mapping[str, Any]) -> str | None:
    raw = attributes.get(USER_ATTRIBUTE)
    return _text(raw) if raw is not None else None


def preview(value: Any) -> str | None:
    """The preview text of a root span's inputs or outputs (None when there are none)."""
    if value is None:
        return None
    # Keys sorted: a Struct has no key order, and JSONB would impose its own.
    text = (
        value
        if isinstance(value, str)
        else json.dumps(value, ensure_ascii=False, separators=(",", ":"), sort_keys=True)
    )
    text = text.replace("\x00", "\ufffd")
    return text if len(text) <= PREVIEW_MAX else text[: PREVIEW_MAX - 3] + "..."


def aggregate_usage(spans: Iterable[tuple[str, str, TokenUsage | None]]) -> TokenUsage | None:
    """Sum of usage over spans whose ancestors report none; ``spans`` = (id, parent id, usage)."""
    parent_of: dict[str, str] = {}
    usage_of: dict[str, TokenUsage] = {}
    for span_id, parent_id, usage in spans:
        parent_of[span_id] = parent_id
        if usage is not None:
            usage_of[span_id] = usage
    if not usage_of:
        return None
    total = [0, 0, 0]
    for span_id, usage in usage_of.items():
        if _has_reporting_ancestor(span_id, parent_of, usage_of):
            continue
        total[0] += usage.input_tokens
        total[1] += usage.output_tokens
        total[2] += usage.total_tokens
    return TokenUsage(*total)


def _has_reporting_ancestor(span_id: str, parent_of: Mapping[str, str], usage_of: Mapping[str, TokenUsage]) -> bool:
    seen = {span_id}
    parent = parent_of.get(span_id, "")
    while parent and parent not in seen:  # `seen` guards against cycles in bad data
        if parent in usage_of:
            return True
        seen.add(parent)
        parent = parent_of.get(parent, "")
    return False
