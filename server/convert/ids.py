"""Checks of the server-generated id formats (SPEC §1.2) shared by several services."""

from __future__ import annotations

import re

from server.validation import Violations

RUN_ID = re.compile(r"[0-9a-f]{32}")
MODEL_ID = re.compile(r"m-[0-9a-f]{32}")


def check_run_id(checks: Violations, field: str, value: str, *, required: bool = True) -> None:
    """An evaluation run id: 32 lowercase hex characters (empty only when not ``required``)."""
    if not value:
        if required:
            checks.add(field, "required")
    elif not RUN_ID.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not a run id (32 lowercase hex characters)")


def check_model_id(checks: Violations, field: str, value: str, *, required: bool = True) -> None:
    """A logged model id: 'm-' + 32 lowercase hex characters (empty only when not ``required``)."""
    if not value:
        if required:
            checks.add(field, "required")
    elif not MODEL_ID.fullmatch(value):
        checks.add(field, f"{value[:50]!r} is not a logged model id ('m-' + 32 lowercase hex characters)")
