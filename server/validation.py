"""Request validation against the limits of SPEC §1.10, before anything reaches the database.

A ``Violations`` collector gathers every problem of a request, so the caller learns them all
at once (one ``BadRequest.FieldViolation`` each), then ``raise_if_any`` raises a single
INVALID_ARGUMENT (reason INVALID_FIELD).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping

from store import limits
from store.errors import FieldViolation, InvalidArgument


class Violations:
    def __init__(self) -> None:
        self.items: list[FieldViolation] = []

    def add(self, field: str, description: str) -> None:
        self.items.append(FieldViolation(field, description))

    def text(self, field: str, value: str, *, max_len: int, required: bool = False, blank_ok: bool = True) -> None:
        """A string field: presence, length in characters, no NUL (PostgreSQL cannot store it)."""
        if not value:
            if required:
                self.add(field, "required")
            return
        if len(value) > max_len:
            self.add(field, f"at most {max_len} characters (got {len(value)})")
        if "\x00" in value:
            self.add(field, "must not contain the NUL character")
        if not blank_ok and not value.strip():
            self.add(field, "must not be blank")

    def name(self, field: str, value: str) -> None:
        self.text(field, value, max_len=limits.NAME_MAX, required=True, blank_ok=False)

    def tags(self, field: str, tags: Mapping[str, str]) -> None:
        if len(tags) > limits.TAGS_PER_ENTITY_MAX:
            self.add(field, f"at most {limits.TAGS_PER_ENTITY_MAX} tags (got {len(tags)})")
            return
        for key, value in tags.items():
            entry = f"{field}[{key[:50]}]"
            self.tag(entry, key, entry, value)

    def tag(self, key_field: str, key: str, value_field: str, value: str) -> None:
        """One tag; ``key_field``/``value_field`` name where each part sits in the request."""
        if not key:
            self.add(key_field, "tag key must not be empty")
        else:
            self.text(key_field, key, max_len=limits.TAG_KEY_MAX)
        self.text(value_field, value, max_len=limits.TAG_VALUE_MAX)

    def params(self, field: str, params: Mapping[str, str], *, required: bool) -> None:
        """Parameters of a run or a logged model: 1 (when ``required``) to 1,000 per call,
        keys 1–250 characters, values at most 8,000."""
        if required and not params:
            self.add(field, "at least one parameter")
        if len(params) > limits.PARAMS_PER_CALL_MAX:
            self.add(field, f"at most {limits.PARAMS_PER_CALL_MAX} parameters (got {len(params)})")
            return
        for key, value in params.items():
            entry = f"{field}[{key[:50]}]"
            if not key:
                self.add(entry, "parameter key must not be empty")
            self.text(entry, key, max_len=limits.PARAM_KEY_MAX)
            self.text(entry, value, max_len=limits.PARAM_VALUE_MAX)

    def request_id(self, value: str) -> None:
        if not value:
            return
        try:
            uuid.UUID(value)
        except ValueError:
            self.add("request_id", "must be a UUID")

    def raise_if_any(self) -> None:
        if self.items:
            summary = "; ".join(f"{v.field}: {v.description}" for v in self.items[:5])
            raise InvalidArgument("INVALID_FIELD", f"invalid request: {summary}", self.items)
