"""Labeling sessions and their items (SPEC §8.2–§8.3): what the store takes and returns.

Times are epoch milliseconds. An item's ``state`` here is the state callers see (PENDING,
IN_PROGRESS, COMPLETED, SKIPPED), derived from the stored one (open / completed / skipped),
its submissions and its unexpired leases (``item_state``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from store.errors import FailedPrecondition, InvalidArgument
from store.label_domain import LabelSchemaDef, label_error

OPEN = "open"
CLOSED = "closed"
SESSION_STATES = (OPEN, CLOSED)

# Stored item states.
ITEM_OPEN = "open"
ITEM_COMPLETED = "completed"
ITEM_SKIPPED = "skipped"

# Item states as callers see them.
PENDING = "PENDING"
IN_PROGRESS = "IN_PROGRESS"
COMPLETED = "COMPLETED"
SKIPPED = "SKIPPED"
ITEM_STATES = (PENDING, IN_PROGRESS, COMPLETED, SKIPPED)

# A rater's relation to an item (labeling_item_raters.status).
SUBMITTED = "submitted"
RATER_SKIPPED = "skipped"

# Limits (SPEC §8.2, labeling_session.proto).
SESSION_NAME_MAX = 250
INSTRUCTIONS_MAX = 4_000
SCHEMAS_MAX = 20
RATERS_PER_ITEM_MAX = 100
ASSIGNED_USERS_MAX = 100
RATER_MAX = 250
LEASE_MIN_S = 10
LEASE_MAX_S = 24 * 3600
LEASE_DEFAULT_S = 600
ITEMS_PER_CALL_MAX = 1_000
COMMENT_MAX = 10_000


def item_state(stored: str, submitted: int, active_leases: int) -> str:
    """The state callers see of an item stored as ``stored``."""
    if stored == ITEM_COMPLETED:
        return COMPLETED
    if stored == ITEM_SKIPPED:
        return SKIPPED
    return IN_PROGRESS if submitted > 0 or active_leases > 0 else PENDING


@dataclass(frozen=True, slots=True)
class NewSession:
    """What CreateLabelingSession stores (validated by the server)."""

    experiment_id: str
    name: str
    label_schema_ids: tuple[str, ...]
    raters_per_item: int
    instructions: str = ""
    assigned_users: tuple[str, ...] = ()
    dataset_id: str = ""
    lease_seconds: int = LEASE_DEFAULT_S


@dataclass(frozen=True, slots=True)
class SessionChanges:
    """What UpdateLabelingSession changes; ``None`` keeps the stored value (``dataset_id`` "":
    no dataset)."""

    name: str | None = None
    instructions: str | None = None
    assigned_users: tuple[str, ...] | None = None
    lease_seconds: int | None = None
    dataset_id: str | None = None
    state: str | None = None
    label_schema_ids: tuple[str, ...] | None = None
    raters_per_item: int | None = None


@dataclass(frozen=True, slots=True)
class Progress:
    total: int = 0
    pending: int = 0
    in_progress: int = 0
    completed: int = 0
    skipped: int = 0
    submissions: int = 0


@dataclass(frozen=True, slots=True)
class Session:
    labeling_session_id: str
    experiment_id: str
    name: str
    instructions: str
    label_schema_ids: tuple[str, ...]
    assigned_users: tuple[str, ...]
    raters_per_item: int
    dataset_id: str
    state: str  # open / closed
    lease_seconds: int
    create_time_ms: int
    update_time_ms: int
    progress: Progress = field(default_factory=Progress)


@dataclass(frozen=True, slots=True)
class ItemSource:
    """A trace, or a record of a dataset (exactly one)."""

    trace_id: str = ""
    dataset_id: str = ""
    record_id: str = ""

    @property
    def key(self) -> str:
        """``labeling_items.source_key``: one item per source and session."""
        return f"t:{self.trace_id}" if self.trace_id else f"r:{self.dataset_id}:{self.record_id}"


@dataclass(frozen=True, slots=True)
class Lease:
    rater: str
    expire_time_ms: int


@dataclass(frozen=True, slots=True)
class Item:
    item_id: str
    labeling_session_id: str
    source: ItemSource
    state: str  # PENDING / IN_PROGRESS / COMPLETED / SKIPPED
    raters: tuple[str, ...]  # who submitted, in submission order
    skipped_by: tuple[str, ...]
    leases: tuple[Lease, ...]  # unexpired
    create_time_ms: int
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class LabelInput:
    """One answer of a submission: ``value`` is plain JSON-like Python."""

    schema_id: str
    value: Any
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Submission:
    item_id: str
    rater: str
    labels: tuple[LabelInput, ...]  # in the session's schema order
    assessment_ids: tuple[str, ...]  # empty for dataset record items
    submit_time_ms: int


@dataclass(frozen=True, slots=True)
class Claim:
    item: Item
    lease: Lease


@dataclass(frozen=True, slots=True)
class RaterMark:
    """A rater's submission or skip of an item (a ``labeling_item_raters`` row)."""

    rater: str
    status: str  # submitted / skipped
    first_time_ms: int
    last_time_ms: int


# -- rules (pure; the repository applies them to rows it has locked) ----------------------------


def precondition(reason: str, message: str, **metadata: str) -> FailedPrecondition:
    return FailedPrecondition(reason, message, metadata)


def check_rater(session: Session, rater: str) -> None:
    """With assigned users, only they may claim, submit or skip."""
    if session.assigned_users and rater not in session.assigned_users:
        raise precondition(
            "RATER_NOT_ASSIGNED",
            f"rater {rater[:100]!r} is not assigned to labeling session {session.labeling_session_id!r}",
            labeling_session_id=session.labeling_session_id,
            rater=rater,
        )


def cannot_complete(session: Session, submitted: int, involved: set[str]) -> bool:
    """SKIPPED: fewer assigned raters remain (neither submitted nor skipped) than the item
    still needs. Never without assigned users."""
    if not session.assigned_users:
        return False
    remaining = sum(1 for u in set(session.assigned_users) if u not in involved)
    return remaining < session.raters_per_item - submitted


def check_free_slot(
    session: Session, item_id: str, stored_state: str, submitted: int, rater: str, skipped: bool,
    leases: Sequence[Lease],
) -> None:  # fmt: skip
    """A first submission needs an open item the rater has not ``skipped``, and the rater's
    unexpired lease or a free slot (submissions + other raters' leases < N)."""
    if skipped:
        raise precondition("ITEM_SKIPPED", f"rater {rater[:100]!r} skipped item {item_id!r}", item_id=item_id)
    if stored_state == ITEM_SKIPPED:
        raise precondition(
            "ITEM_SKIPPED", f"item {item_id!r} is skipped: it can no longer be completed", item_id=item_id
        )
    if stored_state == ITEM_COMPLETED:
        raise precondition("ITEM_COMPLETED", f"item {item_id!r} already has all its submissions", item_id=item_id)
    if any(x.rater == rater for x in leases):
        return
    if submitted + len(leases) >= session.raters_per_item:
        raise precondition(
            "NO_FREE_SLOT",
            f"item {item_id!r} is leased to the other raters it still needs; claim another",
            item_id=item_id,
        )


def _invalid_label(field: str, message: str) -> InvalidArgument:
    return InvalidArgument.field(field, message, reason="INVALID_LABEL")


def checked_labels(schemas: Sequence[LabelSchemaDef], labels: Sequence[LabelInput]) -> list[LabelInput]:
    """Exactly one valid label per schema (comments only where enabled), in the session's
    schema order; INVALID_LABEL naming the offending label otherwise."""
    by_id = {s.schema_id: s for s in schemas}
    seen: dict[str, int] = {}
    for i, label in enumerate(labels):
        schema = by_id.get(label.schema_id)
        if schema is None:
            message = f"{label.schema_id[:60]!r} is not a label schema of this session"
            raise _invalid_label(f"labels[{i}].schema_id", message)
        if label.schema_id in seen:
            message = f"schema {label.schema_id!r} is answered twice (also labels[{seen[label.schema_id]}])"
            raise _invalid_label(f"labels[{i}].schema_id", message)
        seen[label.schema_id] = i
        problem = label_error(schema, label.value)
        if problem is not None:
            raise _invalid_label(f"labels[{i}].value", problem)
        if label.comment and not schema.enable_comment:
            raise _invalid_label(f"labels[{i}].comment", f"label schema {schema.name!r} does not take comments")
    missing = [s for s in schemas if s.schema_id not in seen]
    if missing:
        raise _invalid_label("labels", f"no label for schema {missing[0].schema_id!r} ({missing[0].name!r})")
    return [labels[seen[s.schema_id]] for s in schemas]
