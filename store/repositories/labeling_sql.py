"""SQL shared by the labeling repositories (``labeling.py``, ``labeling_claims.py``): table
aliases, prebuilt statements, errors and row converters.

Tables in ``store/orm/labeling.py``. Hot paths (claim, submit, skip) run the prebuilt
statements here on the driver (``uow.fetch``); the locking they take part in is described in
``labeling_claims.py``.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from functools import cache
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.engine import json_text
from store.errors import FailedPrecondition, NotFound
from store.labeling_domain import (
    ITEM_COMPLETED,
    ITEM_OPEN,
    ITEM_SKIPPED,
    RATER_SKIPPED,
    SUBMITTED,
    Item,
    ItemSource,
    Lease,
    Progress,
    Session,
    item_state,
    precondition,
)
from store.orm.base import table
from store.orm.datasets import DatasetRecordRow
from store.orm.labeling import (
    LabelingItemRaterRow,
    LabelingItemRow,
    LabelingLabelRow,
    LabelingLeaseRow,
    LabelingSessionRow,
    LabelingSessionSchemaRow,
    LabelSchemaRow,
)
from store.orm.traces import AssessmentRow, TraceRow
from store.query.bulk import BulkWrite

S = table(LabelingSessionRow)
SS = table(LabelingSessionSchemaRow)
I = table(LabelingItemRow)  # noqa: E741
IR = table(LabelingItemRaterRow)
LL = table(LabelingLabelRow)
LE = table(LabelingLeaseRow)
TR = table(TraceRow)
DR = table(DatasetRecordRow)
LS = table(LabelSchemaRow)
A = table(AssessmentRow)
_P = sa.bindparam

CLAIM_BATCH = 2  # candidate items locked per ClaimNextItem attempt

_SESSION_COLUMNS = (
    S.c.labeling_session_id, S.c.experiment_id, S.c.name, S.c.instructions, S.c.assigned_users,
    S.c.raters_per_item, S.c.dataset_id, S.c.state, S.c.lease_seconds, S.c.create_time, S.c.update_time,
)  # fmt: skip
_ITEM_COLUMNS = (
    I.c.item_id, I.c.labeling_session_id, I.c.position, I.c.trace_id, I.c.dataset_id, I.c.dataset_record_id,
    I.c.state, I.c.submitted, I.c.create_time, I.c.update_time,
)  # fmt: skip

# -- sessions
_GET_SESSION = sa.select(*_SESSION_COLUMNS).where(S.c.labeling_session_id == _P("b_id"))
_SHARE_SESSION = _GET_SESSION.with_for_update(read=True)
_LOCK_SESSION = sa.select(*_SESSION_COLUMNS, S.c.next_position).where(S.c.labeling_session_id == _P("b_id"))
_LOCK_SESSION = _LOCK_SESSION.with_for_update()
_SCHEMA_IDS = sa.select(SS.c.schema_id).where(SS.c.labeling_session_id == _P("b_id")).order_by(SS.c.position)
_SESSION_AND_SCHEMAS = (
    sa.select(*_SESSION_COLUMNS, *(c.label(f"s_{c.name}") for c in LS.c))
    .join_from(S, SS, SS.c.labeling_session_id == S.c.labeling_session_id)
    .join(LS, LS.c.schema_id == SS.c.schema_id)
    .where(S.c.labeling_session_id == _P("b_id"))
    .order_by(SS.c.position)
    .with_for_update(read=True, of=S)
)
_NAME_TAKEN = sa.select(S.c.labeling_session_id).where(S.c.experiment_id == _P("b_exp"), S.c.name == _P("b_name"))
_INSERT_SESSION = sa.insert(S)
_INSERT_SCHEMAS = BulkWrite(SS, ("labeling_session_id", "position", "schema_id"))
_DELETE_SCHEMAS = sa.delete(SS).where(SS.c.labeling_session_id == _P("b_id"))
_DELETE_SESSION = sa.delete(S).where(S.c.labeling_session_id == _P("b_id")).returning(S.c.labeling_session_id)
_HAS_SUBMISSIONS = sa.select(I.c.item_id).where(I.c.labeling_session_id == _P("b_id"), I.c.submitted > 0).limit(1)
_ADVANCE = (
    sa.update(S)
    .where(S.c.labeling_session_id == _P("b_id"))
    .values(next_position=_P("b_next"), update_time=_P("b_now"))
)


def _active_lease_exists(now: Any) -> sa.Exists:
    return sa.exists().where(LE.c.item_id == I.c.item_id, LE.c.expire_time > now)


def _progress_columns(now: Any) -> tuple[Any, ...]:
    busy = sa.or_(I.c.submitted > 0, _active_lease_exists(now))
    return (
        I.c.state,
        sa.func.count(),
        sa.func.coalesce(sa.func.sum(I.c.submitted), 0),
        sa.func.coalesce(sa.func.sum(sa.case((busy, 1), else_=0)), 0),
    )


_PROGRESS = sa.select(*_progress_columns(_P("b_now"))).where(I.c.labeling_session_id == _P("b_id")).group_by(I.c.state)

# -- items
_LOCK_ITEM = sa.select(*_ITEM_COLUMNS).where(I.c.item_id == _P("b_id"), I.c.labeling_session_id == _P("b_s"))
_LOCK_ITEM = _LOCK_ITEM.with_for_update()
# An item's rater rows (kind "r": status, first and last submit time) and unexpired leases
# (kind "l": expire time), in one round trip.
_ITEM_PEOPLE = sa.union_all(
    sa.select(sa.literal("r").label("kind"), IR.c.rater, IR.c.status, IR.c.create_time, IR.c.update_time).where(
        IR.c.item_id == _P("b_id")
    ),
    sa.select(sa.literal("l"), LE.c.rater, sa.literal("lease"), LE.c.expire_time, LE.c.expire_time).where(
        LE.c.item_id == _P("b_id"), LE.c.expire_time > _P("b_now")
    ),
)
_OWN_LEASE = (
    sa.select(*_ITEM_COLUMNS)
    .join_from(LE, I, I.c.item_id == LE.c.item_id)
    .where(
        LE.c.labeling_session_id == _P("b_s"),
        LE.c.rater == _P("b_r"),
        LE.c.expire_time > _P("b_now"),
        I.c.state == ITEM_OPEN,
    )
    .order_by(I.c.position)
    .limit(1)
    .with_for_update(of=I)
)
_RENEW = (
    sa.update(LE)
    .where(LE.c.item_id == _P("b_id"), LE.c.rater == _P("b_r"), LE.c.expire_time > _P("b_now"))
    .values(expire_time=_P("b_exp"))
    .returning(LE.c.item_id)
)
_OTHER_LEASES = (
    sa.select(sa.func.count())
    .where(LE.c.item_id == I.c.item_id, LE.c.rater != _P("b_r"), LE.c.expire_time > _P("b_now"))
    .scalar_subquery()
)
_CANDIDATES = (
    sa.select(*_ITEM_COLUMNS)
    .where(
        I.c.labeling_session_id == _P("b_s"),
        I.c.state == ITEM_OPEN,
        ~sa.exists().where(IR.c.item_id == I.c.item_id, IR.c.rater == _P("b_r")),
        I.c.submitted + _OTHER_LEASES < _P("b_n"),
    )
    .order_by(I.c.position)
    .limit(CLAIM_BATCH)
)
_CANDIDATES_SKIP_LOCKED = _CANDIDATES.with_for_update(skip_locked=True, of=I)
_CANDIDATES_WAIT = _CANDIDATES.with_for_update(of=I)
_DELETE_LEASE = sa.delete(LE).where(LE.c.item_id == _P("b_id"), LE.c.rater == _P("b_r"))
_COUNT_SUBMISSION = (
    sa.update(I)
    .where(I.c.item_id == _P("b_id"))
    .values(
        submitted=I.c.submitted + 1,
        state=sa.case((I.c.submitted + 1 >= _P("b_n"), ITEM_COMPLETED), else_=I.c.state),
        update_time=_P("b_now"),
    )
)
_SET_ITEM_STATE = sa.update(I).where(I.c.item_id == _P("b_id")).values(state=_P("b_state"), update_time=_P("b_now"))
_PREVIOUS_LABELS = sa.select(LL.c.schema_id, LL.c.assessment_id).where(
    LL.c.item_id == _P("b_id"), LL.c.rater == _P("b_r")
)
_INSERT_ITEMS = BulkWrite(
    I,
    ("item_id", "labeling_session_id", "position", "trace_id", "dataset_id", "dataset_record_id", "source_key",
     "state", "submitted", "create_time", "update_time"),
)  # fmt: skip
_UPSERT_LABELS = BulkWrite(
    LL,
    ("item_id", "rater", "schema_id", "labeling_session_id", "value", "comment", "assessment_id"),
    ("item_id", "rater", "schema_id"),
    ("value", "comment", "assessment_id"),
)


@cache
def _upsert_rater(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(IR).values(
        item_id=_P("b_id"), rater=_P("b_r"), labeling_session_id=_P("b_s"), status=_P("b_status"),
        create_time=_P("b_now"), update_time=_P("b_now"),
    )  # fmt: skip
    return stmt.on_conflict_do_update(
        index_elements=[IR.c.item_id, IR.c.rater],
        set_={"status": stmt.excluded.status, "update_time": stmt.excluded.update_time},
    )


@cache
def _upsert_lease(dialect: str) -> Any:
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(LE).values(
        item_id=_P("b_id"), rater=_P("b_r"), labeling_session_id=_P("b_s"), expire_time=_P("b_exp")
    )
    return stmt.on_conflict_do_update(
        index_elements=[LE.c.item_id, LE.c.rater], set_={"expire_time": stmt.excluded.expire_time}
    )


# -- errors


def session_not_found(session_id: str) -> NotFound:
    return NotFound(
        "LABELING_SESSION_NOT_FOUND",
        f"labeling session {session_id!r} does not exist",
        {"labeling_session_id": session_id},
    )


def item_not_found(session_id: str, item_ids: Sequence[str]) -> NotFound:
    shown = ", ".join(repr(i) for i in item_ids[:5])
    return NotFound(
        "ITEM_NOT_FOUND",
        f"labeling session {session_id!r} has no item {shown}",
        {"labeling_session_id": session_id, "item_ids": ",".join(item_ids)},
    )


def _closed(session_id: str) -> FailedPrecondition:
    return precondition(
        "SESSION_CLOSED", f"labeling session {session_id!r} is closed; reopen it first", labeling_session_id=session_id
    )


# -- row helpers


def _session(row: Any, schema_ids: Sequence[str], progress: Progress | None = None) -> Session:
    return Session(
        labeling_session_id=row.labeling_session_id,
        experiment_id=str(row.experiment_id),
        name=row.name,
        instructions=row.instructions or "",
        label_schema_ids=tuple(schema_ids),
        assigned_users=tuple(json.loads(row.assigned_users or "[]")),
        raters_per_item=int(row.raters_per_item),
        dataset_id=row.dataset_id or "",
        state=row.state,
        lease_seconds=int(row.lease_seconds),
        create_time_ms=int(row.create_time),
        update_time_ms=int(row.update_time),
        progress=progress or Progress(),
    )


def _source(row: Any) -> ItemSource:
    if row.trace_id:
        return ItemSource(trace_id=row.trace_id)
    return ItemSource(dataset_id=row.dataset_id or "", record_id=row.dataset_record_id or "")


def _item(row: Any, raters: Sequence[Any], leases: Sequence[Lease], *, state: str | None = None,
          submitted: int | None = None, update_time: int | None = None) -> Item:  # fmt: skip
    """An item from its row (``state``/``submitted``/``update_time`` override the row's values),
    its rater rows (in submission order) and its unexpired leases."""
    stored = state if state is not None else row.state
    count = submitted if submitted is not None else int(row.submitted)
    return Item(
        item_id=row.item_id,
        labeling_session_id=row.labeling_session_id,
        source=_source(row),
        state=item_state(stored, count, len(leases)),
        raters=tuple(r.rater for r in raters if r.status == SUBMITTED),
        skipped_by=tuple(r.rater for r in raters if r.status == RATER_SKIPPED),
        leases=tuple(leases),
        create_time_ms=int(row.create_time),
        update_time_ms=int(update_time if update_time is not None else row.update_time),
    )


def _progress(rows: Sequence[Any]) -> Progress:
    counts = {ITEM_OPEN: 0, ITEM_COMPLETED: 0, ITEM_SKIPPED: 0}
    busy = submissions = 0
    for state, count, submitted, busy_items in rows:
        counts[state] = int(count)
        submissions += int(submitted)
        if state == ITEM_OPEN:
            busy = int(busy_items)
    return Progress(
        total=sum(counts.values()),
        pending=counts[ITEM_OPEN] - busy,
        in_progress=busy,
        completed=counts[ITEM_COMPLETED],
        skipped=counts[ITEM_SKIPPED],
        submissions=submissions,
    )


def _dumps(value: Any) -> str:
    return json_text(value)  # label values are checked against their schema (store/label_domain.py)


def new_session_id() -> str:
    return "lbs-" + uuid.uuid4().hex


def new_item_id() -> str:
    return "lsi-" + uuid.uuid4().hex
