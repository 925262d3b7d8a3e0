"""Labeling sessions, items, leases, submissions and skips (SPEC §8.2–§8.3).

Tables in ``store/orm/labeling.py``. The capacity rule — an item is leased to at most as many
raters as it still needs — holds under concurrency because every write that changes an
item's submissions or leases (claim, renew, submit, skip, remove) first locks the item row
(``FOR UPDATE`` on PostgreSQL; SQLite's ``BEGIN IMMEDIATE`` write transaction already holds
the database) and then re-reads the item's raters and unexpired leases: under READ COMMITTED
those later statements see everything committed before the lock was granted.

ClaimNextItem picks candidates with ``FOR UPDATE SKIP LOCKED`` (a small batch, by position),
so raters claiming at once take different items instead of queueing on one; when every
candidate was locked it tries once more waiting for the locks, so a rater is never told
"nothing left" only because another rater's transaction held the last free item.

Writers that depend on the session's settings (submit, skip, remove) take a shared lock on
the session row; the writers of those settings (update, add items) an exclusive one. So
closing a session, or changing its schemas while it has no submission, waits for submissions
in flight and is never overtaken by one.

Hot paths (claim, submit, skip) run prebuilt statements on the driver (``uow.fetch``).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.domain import AssessmentSource, Page
from store.errors import AlreadyExists, FailedPrecondition, NotFound
from store.label_domain import LabelSchemaDef, assessment_value
from store.labeling_domain import (
    ITEM_COMPLETED,
    ITEM_OPEN,
    ITEM_SKIPPED,
    RATER_SKIPPED,
    SUBMITTED,
    Claim,
    Item,
    ItemSource,
    LabelInput,
    Lease,
    NewSession,
    Progress,
    RaterMark,
    Session,
    SessionChanges,
    Submission,
    cannot_complete,
    check_free_slot,
    check_rater,
    checked_labels,
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
from store.query.keyset import OrderTerm, apply_keyset, binding_of, order_text, split_page
from store.repositories.assessments import NewAssessment
from store.repositories.experiments import parse_experiment_id
from store.repositories.label_schemas import schema_of
from store.repositories.traces import trace_not_found

if TYPE_CHECKING:
    from store.uow import UnitOfWork

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

CLAIM_BATCH = 8  # candidate items locked per ClaimNextItem attempt

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
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def new_session_id() -> str:
    return "lbs-" + uuid.uuid4().hex


def new_item_id() -> str:
    return "lsi-" + uuid.uuid4().hex


class LabelingRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- sessions --------------------------------------------------------------------------

    def get(self, session_id: str, now_ms: int) -> Session:
        rows = self._uow.fetch(_GET_SESSION, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        schema_ids = [r[0] for r in self._uow.fetch(_SCHEMA_IDS, {"b_id": session_id})]
        progress = _progress(self._uow.fetch(_PROGRESS, {"b_id": session_id, "b_now": now_ms}))
        return _session(rows[0], schema_ids, progress)

    def page(self, experiment_id: str, page_size: int, page_token: str, now_ms: int) -> Page[Session]:
        """An experiment's sessions, newest first."""
        exp = parse_experiment_id(experiment_id)
        self._uow.experiments.get(experiment_id)  # NOT_FOUND for an unknown experiment
        terms = [
            OrderTerm("create_time", S.c.create_time, descending=True),
            OrderTerm("labeling_session_id", S.c.labeling_session_id),
        ]
        stmt = sa.select(*_SESSION_COLUMNS).where(S.c.experiment_id == exp)
        rows, token = self._keyset_page(stmt, terms, page_size, page_token, "ListLabelingSessions", exp)
        ids = [r.labeling_session_id for r in rows]
        schemas: dict[str, list[str]] = {i: [] for i in ids}
        progress: dict[str, list[Any]] = {i: [] for i in ids}
        if ids:
            for sid, schema_id in self._conn.execute(
                sa.select(SS.c.labeling_session_id, SS.c.schema_id)
                .where(SS.c.labeling_session_id.in_(ids))
                .order_by(SS.c.labeling_session_id, SS.c.position)
            ):
                schemas[sid].append(schema_id)
            stmt = (
                sa.select(I.c.labeling_session_id, *_progress_columns(now_ms))
                .where(I.c.labeling_session_id.in_(ids))
                .group_by(I.c.labeling_session_id, I.c.state)
            )
            for row in self._conn.execute(stmt):
                progress[row[0]].append(tuple(row[1:]))
        return Page(
            [_session(r, schemas[r.labeling_session_id], _progress(progress[r.labeling_session_id])) for r in rows],
            token,
        )

    def create(self, new: NewSession, now_ms: int) -> Session:
        exp = self._uow.experiments.require_active(new.experiment_id)
        self._check_schemas(new.label_schema_ids, new.experiment_id, "labeling_session.label_schema_ids")
        if new.dataset_id:
            self._uow.datasets.current_version(new.dataset_id)
        if self._uow.fetch(_NAME_TAKEN, {"b_exp": exp, "b_name": new.name}):
            raise _name_taken(new.name, new.experiment_id)
        session_id = new_session_id()
        self._conn.execute(
            _INSERT_SESSION,
            {
                "labeling_session_id": session_id, "experiment_id": exp, "name": new.name,
                "instructions": new.instructions, "assigned_users": _dumps(list(new.assigned_users)),
                "raters_per_item": new.raters_per_item, "dataset_id": new.dataset_id or None, "state": "open",
                "lease_seconds": new.lease_seconds, "next_position": 0, "create_time": now_ms, "update_time": now_ms,
            },
        )  # fmt: skip
        _INSERT_SCHEMAS.run(self._uow, [(session_id, i, s) for i, s in enumerate(new.label_schema_ids)])
        return self.get(session_id, now_ms)

    def update(self, session_id: str, changes: SessionChanges, now_ms: int) -> Session:
        rows = self._uow.fetch(_LOCK_SESSION, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        current = _session(rows[0], [r[0] for r in self._uow.fetch(_SCHEMA_IDS, {"b_id": session_id})])
        self._uow.experiments.require_active(current.experiment_id)
        new_schemas = changes.label_schema_ids not in (None, current.label_schema_ids)
        new_n = changes.raters_per_item not in (None, current.raters_per_item)
        if (new_schemas or new_n) and self._uow.fetch(_HAS_SUBMISSIONS, {"b_id": session_id}):
            which = " and ".join(n for n, v in (("label_schema_ids", new_schemas), ("raters_per_item", new_n)) if v)
            raise precondition(
                "SESSION_HAS_SUBMISSIONS",
                f"labeling session {session_id!r} has submissions: its {which} can no longer change",
                labeling_session_id=session_id,
            )
        if changes.label_schema_ids is not None and new_schemas:
            self._check_schemas(changes.label_schema_ids, current.experiment_id, "labeling_session.label_schema_ids")
            self._conn.execute(_DELETE_SCHEMAS, {"b_id": session_id})
            _INSERT_SCHEMAS.run(self._uow, [(session_id, i, s) for i, s in enumerate(changes.label_schema_ids)])
        values = self._new_values(current, changes)
        if values or new_schemas:
            values["update_time"] = now_ms
            self._conn.execute(sa.update(S).where(S.c.labeling_session_id == session_id).values(values))
        users = changes.assigned_users if changes.assigned_users is not None else current.assigned_users
        n = changes.raters_per_item if changes.raters_per_item is not None else current.raters_per_item
        if users != current.assigned_users or n != current.raters_per_item:
            self._recompute_skipped(session_id, users, n, now_ms)
        return self.get(session_id, now_ms)

    def _new_values(self, current: Session, changes: SessionChanges) -> dict[str, Any]:
        """The session row's new column values (name and dataset checked)."""
        values: dict[str, Any] = {}
        if changes.name is not None and changes.name != current.name:
            if self._uow.fetch(_NAME_TAKEN, {"b_exp": int(current.experiment_id), "b_name": changes.name}):
                raise _name_taken(changes.name, current.experiment_id)
            values["name"] = changes.name
        if changes.dataset_id is not None:
            if changes.dataset_id:
                self._uow.datasets.current_version(changes.dataset_id)
            values["dataset_id"] = changes.dataset_id or None
        for name in ("instructions", "lease_seconds", "state", "raters_per_item"):
            if getattr(changes, name) is not None:
                values[name] = getattr(changes, name)
        if changes.assigned_users is not None:
            values["assigned_users"] = _dumps(list(changes.assigned_users))
        return values

    def delete(self, session_id: str, allow_missing: bool) -> None:
        if not self._uow.fetch(_DELETE_SESSION, {"b_id": session_id}) and not allow_missing:
            raise session_not_found(session_id)

    # -- items -----------------------------------------------------------------------------

    def add_items(self, session_id: str, sources: Sequence[ItemSource], now_ms: int) -> tuple[list[Item], int]:
        """The item of each source in order (existing ones for sources already there) and how
        many are new. Everything is checked before anything is written."""
        rows = self._uow.fetch(_LOCK_SESSION, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        session = rows[0]
        if session.state != "open":
            raise _closed(session_id)
        self._uow.experiments.require_active(str(session.experiment_id))
        keys = list(dict.fromkeys(s.key for s in sources))
        existing = {
            r.source_key: r
            for r in self._conn.execute(
                sa.select(*_ITEM_COLUMNS, I.c.source_key).where(
                    I.c.labeling_session_id == session_id, I.c.source_key.in_(keys)
                )
            )
        }
        fresh = list({s.key: s for s in sources if s.key not in existing}.values())
        self._check_sources(fresh, int(session.experiment_id))
        position = int(session.next_position)
        new_rows = []
        for source in fresh:
            new_rows.append(
                (new_item_id(), session_id, position, source.trace_id or None, source.dataset_id or None,
                 source.record_id or None, source.key, ITEM_OPEN, 0, now_ms, now_ms)
            )  # fmt: skip
            position += 1
        if new_rows:
            _INSERT_ITEMS.run(self._uow, new_rows)
            self._uow.fetch(_ADVANCE, {"b_id": session_id, "b_next": position, "b_now": now_ms})
        details = self._details([r.item_id for r in existing.values()], now_ms)
        made = {
            key: Item(item_id, session_id, source_of, "PENDING", (), (), (), now_ms, now_ms)
            for (item_id, _, _, _, _, _, key, *_), source_of in zip(new_rows, fresh, strict=True)
        }
        out = [
            made[s.key] if s.key in made else _item(existing[s.key], *details[existing[s.key].item_id]) for s in sources
        ]
        return out, len(new_rows)

    def remove_items(self, session_id: str, item_ids: Sequence[str], now_ms: int) -> int:
        self._open_session(session_id)
        wanted = sorted(set(item_ids))
        found = {
            r[0]
            for r in self._conn.execute(
                sa.select(I.c.item_id)
                .where(I.c.item_id.in_(wanted), I.c.labeling_session_id == session_id)
                .order_by(I.c.item_id)
                .with_for_update()
            )
        }
        missing = [i for i in wanted if i not in found]
        if missing:
            raise item_not_found(session_id, missing)
        self._conn.execute(sa.delete(I).where(I.c.item_id.in_(wanted)))
        self._conn.execute(sa.update(S).where(S.c.labeling_session_id == session_id).values(update_time=now_ms))
        return len(wanted)

    def list_items(
        self, session_id: str, states: Sequence[str], rater: str, page_size: int, page_token: str, now_ms: int
    ) -> Page[Item]:
        self._require_session(session_id)
        stmt = sa.select(*_ITEM_COLUMNS).where(I.c.labeling_session_id == session_id)
        wanted = sorted(set(states))
        if wanted:
            stmt = stmt.where(sa.or_(*(_state_condition(s, now_ms) for s in wanted)))
        if rater:
            stmt = stmt.where(
                sa.exists().where(IR.c.item_id == I.c.item_id, IR.c.rater == rater, IR.c.status == SUBMITTED)
            )
        terms = [OrderTerm("position", I.c.position)]
        rows, token = self._keyset_page(stmt, terms, page_size, page_token, "ListItems", session_id, wanted, rater)
        details = self._details([r.item_id for r in rows], now_ms)
        return Page([_item(r, *details[r.item_id]) for r in rows], token)

    # -- claims, submissions, skips -------------------------------------------------------

    def claim(self, session_id: str, rater: str, lease_ms: int | None, now_ms: int) -> Claim | None:
        """Lease the rater's next item (``lease_ms``: None for the session's lease duration)."""
        rows = self._uow.fetch(_GET_SESSION, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        session = _session(rows[0], ())
        if session.state != "open":
            raise _closed(session_id)
        check_rater(session, rater)
        lease = Lease(rater, now_ms + (lease_ms or 1000 * session.lease_seconds))
        renew = {"b_r": rater, "b_now": now_ms, "b_exp": lease.expire_time_ms}
        for item in self._uow.fetch(_OWN_LEASE, {"b_s": session_id, "b_r": rater, "b_now": now_ms}):
            if self._uow.fetch(_RENEW, {"b_id": item.item_id, **renew}):
                raters, leases = self._people(item.item_id, now_ms)
                return Claim(_item(item, raters, leases), lease)
        params = {"b_s": session_id, "b_r": rater, "b_now": now_ms, "b_n": session.raters_per_item}
        for stmt in (_CANDIDATES_SKIP_LOCKED, _CANDIDATES_WAIT):
            for item in self._uow.fetch(stmt, params):
                # The row is locked now: this read sees every lease and rater of the item.
                raters, leases = self._people(item.item_id, now_ms)
                others = [x for x in leases if x.rater != rater]
                if item.state != ITEM_OPEN or any(r.rater == rater for r in raters):
                    continue
                if int(item.submitted) + len(others) >= session.raters_per_item:
                    continue
                self._uow.fetch(
                    _upsert_lease(self._uow.dialect),
                    {"b_id": item.item_id, "b_r": rater, "b_s": session_id, "b_exp": lease.expire_time_ms},
                )
                return Claim(_item(item, raters, sorted([*others, lease], key=_lease_order)), lease)
            if self._uow.dialect != "postgresql":
                break  # SQLite: nothing was locked, so nothing was skipped
        return None

    def submit(
        self, session_id: str, item_id: str, rater: str, labels: Sequence[LabelInput], now_ms: int
    ) -> tuple[Submission, Item]:
        session, schemas = self._session_for_submit(session_id)
        check_rater(session, rater)
        ordered = checked_labels(schemas, labels)
        item = self._lock_item(session_id, item_id)
        raters, leases = self._people(item_id, now_ms)
        mine = next((r for r in raters if r.rater == rater), None)
        again = mine is not None and mine.status == SUBMITTED
        if not again:
            skipped = mine is not None and mine.status == RATER_SKIPPED
            check_free_slot(session, item_id, item.state, int(item.submitted), rater, skipped, leases)
        assessment_ids = self._write_assessments(session, item, rater, schemas, ordered, again, now_ms)
        self._uow.fetch(
            _upsert_rater(self._uow.dialect),
            {"b_id": item_id, "b_r": rater, "b_s": session_id, "b_status": SUBMITTED, "b_now": now_ms},
        )
        label_rows = [
            (item_id, rater, label.schema_id, session_id, _dumps(label.value), label.comment or None, aid)
            for label, aid in zip(ordered, assessment_ids, strict=True)
        ]
        _UPSERT_LABELS.run(self._uow, sorted(label_rows))
        self._uow.fetch(_DELETE_LEASE, {"b_id": item_id, "b_r": rater})
        submitted, state = int(item.submitted), item.state
        if again:
            self._uow.fetch(_SET_ITEM_STATE, {"b_id": item_id, "b_state": state, "b_now": now_ms})
        else:
            self._uow.fetch(_COUNT_SUBMISSION, {"b_id": item_id, "b_n": session.raters_per_item, "b_now": now_ms})
            submitted += 1
            state = ITEM_COMPLETED if submitted >= session.raters_per_item else state
        first = mine.first_time_ms if mine is not None and again else now_ms
        after = sorted(
            [*(r for r in raters if r.rater != rater), RaterMark(rater, SUBMITTED, first, now_ms)], key=_rater_order
        )
        rest = [x for x in leases if x.rater != rater]
        submission = Submission(item_id, rater, tuple(ordered), tuple(a for a in assessment_ids if a), now_ms)
        return submission, _item(item, after, rest, state=state, submitted=submitted, update_time=now_ms)

    def skip(self, session_id: str, item_id: str, rater: str, now_ms: int) -> Item:
        session = self._open_session(session_id)
        check_rater(session, rater)
        item = self._lock_item(session_id, item_id)
        raters, leases = self._people(item_id, now_ms)
        mine = next((r for r in raters if r.rater == rater), None)
        if mine is not None and mine.status == SUBMITTED:
            raise precondition(
                "ALREADY_SUBMITTED",
                f"rater {rater[:100]!r} has already submitted labels for item {item_id!r}",
                item_id=item_id,
                rater=rater,
            )
        if mine is not None:  # skipped before: nothing changes
            return _item(item, raters, leases)
        self._uow.fetch(
            _upsert_rater(self._uow.dialect),
            {"b_id": item_id, "b_r": rater, "b_s": session_id, "b_status": RATER_SKIPPED, "b_now": now_ms},
        )
        self._uow.fetch(_DELETE_LEASE, {"b_id": item_id, "b_r": rater})
        after = [*raters, RaterMark(rater, RATER_SKIPPED, now_ms, now_ms)]
        state = item.state
        if state == ITEM_OPEN and cannot_complete(session, int(item.submitted), {r.rater for r in after}):
            state = ITEM_SKIPPED
        self._uow.fetch(_SET_ITEM_STATE, {"b_id": item_id, "b_state": state, "b_now": now_ms})
        rest = [x for x in leases if x.rater != rater]
        return _item(item, after, rest, state=state, update_time=now_ms)

    def submissions(
        self, session_id: str, item_id: str, rater: str, page_size: int, page_token: str
    ) -> Page[Submission]:
        self._require_session(session_id)
        schema_ids = [r[0] for r in self._uow.fetch(_SCHEMA_IDS, {"b_id": session_id})]
        stmt = (
            sa.select(IR.c.item_id, IR.c.rater, IR.c.create_time, IR.c.update_time, I.c.position)
            .join_from(IR, I, I.c.item_id == IR.c.item_id)
            .where(IR.c.labeling_session_id == session_id, IR.c.status == SUBMITTED)
        )
        if item_id:
            stmt = stmt.where(IR.c.item_id == item_id)
        if rater:
            stmt = stmt.where(IR.c.rater == rater)
        terms = [
            OrderTerm("position", I.c.position),
            OrderTerm("create_time", IR.c.create_time),
            OrderTerm("rater", IR.c.rater),
        ]
        rows, token = self._keyset_page(
            stmt, terms, page_size, page_token, "ListSubmissions", session_id, item_id, rater
        )
        labels: dict[tuple[str, str], dict[str, Any]] = {(r.item_id, r.rater): {} for r in rows}
        if rows:
            found = self._conn.execute(
                sa.select(LL.c.item_id, LL.c.rater, LL.c.schema_id, LL.c.value, LL.c.comment, LL.c.assessment_id).where(
                    LL.c.item_id.in_(sorted({r.item_id for r in rows}))
                )
            )
            for label in found:
                if (label.item_id, label.rater) in labels:
                    labels[(label.item_id, label.rater)][label.schema_id] = label
        out = []
        for r in rows:
            mine = labels[(r.item_id, r.rater)]
            stored = [mine[s] for s in schema_ids if s in mine]
            out.append(
                Submission(
                    item_id=r.item_id,
                    rater=r.rater,
                    labels=tuple(LabelInput(x.schema_id, json.loads(x.value), x.comment or "") for x in stored),
                    assessment_ids=tuple(x.assessment_id for x in stored if x.assessment_id),
                    submit_time_ms=int(r.update_time),
                )
            )
        return Page(out, token)

    # -- helpers ---------------------------------------------------------------------------

    def _require_session(self, session_id: str) -> Any:
        rows = self._uow.fetch(_GET_SESSION, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        return rows[0]

    def _open_session(self, session_id: str) -> Session:
        """The session, share-locked; SESSION_CLOSED unless it is open."""
        rows = self._uow.fetch(_SHARE_SESSION, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        if rows[0].state != "open":
            raise _closed(session_id)
        return _session(rows[0], ())

    def _session_for_submit(self, session_id: str) -> tuple[Session, list[LabelSchemaDef]]:
        """The open session (share-locked) and its schemas, in one round trip."""
        rows = self._uow.fetch(_SESSION_AND_SCHEMAS, {"b_id": session_id})
        if not rows:
            raise session_not_found(session_id)
        if rows[0].state != "open":
            raise _closed(session_id)
        schemas = [schema_of(r, "s_") for r in rows]
        return _session(rows[0], [x.schema_id for x in schemas]), schemas

    def _lock_item(self, session_id: str, item_id: str) -> Any:
        rows = self._uow.fetch(_LOCK_ITEM, {"b_id": item_id, "b_s": session_id})
        if not rows:
            raise item_not_found(session_id, [item_id])
        return rows[0]

    def _people(self, item_id: str, now_ms: int) -> tuple[list[RaterMark], list[Lease]]:
        """The item's raters (in submission order) and unexpired leases (soonest first)."""
        raters, leases = [], []
        for kind, rater, status, first, last in self._uow.fetch(_ITEM_PEOPLE, {"b_id": item_id, "b_now": now_ms}):
            if kind == "r":
                raters.append(RaterMark(rater, status, int(first), int(last)))
            else:
                leases.append(Lease(rater, int(first)))
        raters.sort(key=_rater_order)
        leases.sort(key=_lease_order)
        return raters, leases

    def _write_assessments(
        self, session: Session, item: Any, rater: str, schemas: Sequence[LabelSchemaDef],
        labels: Sequence[LabelInput], again: bool, now_ms: int,
    ) -> list[str | None]:  # fmt: skip
        """One HUMAN assessment per label on the item's trace (overriding the rater's previous
        ones); their ids in label order. Dataset record items get none (all None)."""
        if not item.trace_id:
            self._uow.experiments.require_active(session.experiment_id)
            return [None] * len(labels)
        previous = self._overridable(item.item_id, item.trace_id, rater) if again else {}
        by_id = {s.schema_id: s for s in schemas}
        news = [
            NewAssessment(
                trace_id=item.trace_id,
                name=by_id[label.schema_id].name,
                kind=by_id[label.schema_id].type,
                source=AssessmentSource("HUMAN", rater),
                value=assessment_value(by_id[label.schema_id], label.value),
                rationale=label.comment,
                overrides=previous.get(label.schema_id, ""),
            )
            for label in labels
        ]
        paths = [f"labels[{i}]" for i in range(len(news))]
        return [a.assessment_id for a in self._uow.assessments.create(news, now_ms, paths)]

    def _overridable(self, item_id: str, trace_id: str, rater: str) -> dict[str, str]:
        """Per schema, the rater's previous assessment on the trace, if it is still valid
        (a caller may have deleted or overridden it since): what a resubmission overrides."""
        stored = {
            r.schema_id: r.assessment_id for r in self._uow.fetch(_PREVIOUS_LABELS, {"b_id": item_id, "b_r": rater})
        }
        candidates = sorted({a for a in stored.values() if a})
        if not candidates:
            return {}
        query = sa.select(A.c.assessment_id).where(
            A.c.assessment_id.in_(candidates), A.c.valid, A.c.trace_id == trace_id
        )
        valid = set(self._conn.execute(query).scalars())
        return {schema: aid for schema, aid in stored.items() if aid in valid}

    def _check_schemas(self, schema_ids: Sequence[str], experiment_id: str, field: str) -> None:
        schemas = self._uow.label_schemas.get_many(list(schema_ids), lock=True)
        for schema in schemas:
            if schema.experiment_id != experiment_id:
                raise NotFound(
                    "LABEL_SCHEMA_NOT_FOUND",
                    f"{field}: label schema {schema.schema_id!r} is not a schema of experiment {experiment_id!r}",
                    {"schema_id": schema.schema_id, "experiment_id": experiment_id},
                )

    def _check_sources(self, sources: Sequence[ItemSource], experiment: int) -> None:
        trace_ids = sorted({s.trace_id for s in sources if s.trace_id})
        if trace_ids:
            found = dict(
                self._conn.execute(
                    sa.select(TR.c.trace_id, TR.c.experiment_id).where(TR.c.trace_id.in_(trace_ids))
                ).all()
            )
            missing = [t for t in trace_ids if t not in found]
            if missing:
                err = trace_not_found(missing[0])
                err.metadata["trace_ids"] = ",".join(missing)
                raise err
            elsewhere = [t for t in trace_ids if int(found[t]) != experiment]
            if elsewhere:
                raise precondition(
                    "TRACE_NOT_IN_EXPERIMENT",
                    f"trace {elsewhere[0]!r} is not in the session's experiment {experiment}",
                    trace_ids=",".join(elsewhere),
                    experiment_id=str(experiment),
                )
        records: dict[str, set[str]] = {}
        for s in sources:
            if not s.trace_id:
                records.setdefault(s.dataset_id, set()).add(s.record_id)
        for dataset_id in sorted(records):
            self._uow.datasets.current_version(dataset_id)  # DATASET_NOT_FOUND
            wanted = sorted(records[dataset_id])
            current = set(
                self._conn.execute(
                    sa.select(DR.c.dataset_record_id).where(
                        DR.c.dataset_id == dataset_id, DR.c.dataset_record_id.in_(wanted), DR.c.valid_to.is_(None)
                    )
                ).scalars()
            )
            missing = [r for r in wanted if r not in current]
            if missing:
                raise NotFound(
                    "RECORD_NOT_FOUND",
                    f"dataset {dataset_id!r} has no current record {missing[0]!r}",
                    {"dataset_id": dataset_id, "record_ids": ",".join(missing)},
                )

    def _details(self, item_ids: Sequence[str], now_ms: int) -> dict[str, tuple[list[RaterMark], list[Lease]]]:
        """Raters (in submission order) and unexpired leases of each item."""
        out: dict[str, tuple[list[RaterMark], list[Lease]]] = {i: ([], []) for i in item_ids}
        if not item_ids:
            return out
        ids = sorted(item_ids)
        for r in self._conn.execute(
            sa.select(IR.c.item_id, IR.c.rater, IR.c.status, IR.c.create_time, IR.c.update_time)
            .where(IR.c.item_id.in_(ids))
            .order_by(IR.c.item_id, IR.c.create_time, IR.c.rater)
        ):
            out[r.item_id][0].append(RaterMark(r.rater, r.status, int(r.create_time), int(r.update_time)))
        for x in self._conn.execute(
            sa.select(LE.c.item_id, LE.c.rater, LE.c.expire_time)
            .where(LE.c.item_id.in_(ids), LE.c.expire_time > now_ms)
            .order_by(LE.c.item_id, LE.c.expire_time, LE.c.rater)
        ):
            out[x.item_id][1].append(Lease(x.rater, int(x.expire_time)))
        return out

    def _recompute_skipped(self, session_id: str, users: Sequence[str], n: int, now_ms: int) -> None:
        """Items that can no longer be completed by the assigned raters are SKIPPED, the others
        (of those not completed) open; with no assigned raters nothing is SKIPPED."""
        base = sa.update(I).where(I.c.labeling_session_id == session_id)
        if not users:
            self._conn.execute(base.where(I.c.state == ITEM_SKIPPED).values(state=ITEM_OPEN, update_time=now_ms))
            return
        done = (
            sa.select(sa.func.count())
            .where(IR.c.item_id == I.c.item_id, IR.c.rater.in_(sorted(set(users))))
            .scalar_subquery()
        )
        hopeless = len(set(users)) - done < n - I.c.submitted
        self._conn.execute(base.where(I.c.state == ITEM_OPEN, hopeless).values(state=ITEM_SKIPPED, update_time=now_ms))
        self._conn.execute(base.where(I.c.state == ITEM_SKIPPED, ~hopeless).values(state=ITEM_OPEN, update_time=now_ms))
        # Leases of raters no longer assigned free their slots at once.
        self._conn.execute(
            sa.delete(LE).where(LE.c.labeling_session_id == session_id, LE.c.rater.not_in(sorted(set(users))))
        )

    def _keyset_page(
        self, stmt: sa.Select[Any], terms: list[OrderTerm], page_size: int, page_token: str, rpc: str, *scope: object
    ) -> tuple[list[Any], str]:
        binding = binding_of(rpc, order_text(terms), *scope)
        codec = self._uow.db.page_tokens
        after = codec.decode(page_token, binding) if page_token else None
        rows = self._conn.execute(apply_keyset(stmt, terms, page_size, after)).all()
        page, last = split_page(rows, page_size, lambda r: [r._mapping[t.column] for t in terms])
        return page, (codec.encode(last, binding) if last is not None else "")


def _lease_order(lease: Lease) -> tuple[int, str]:
    return lease.expire_time_ms, lease.rater


def _name_taken(name: str, experiment_id: str) -> AlreadyExists:
    return AlreadyExists(
        "LABELING_SESSION_ALREADY_EXISTS",
        f"experiment {experiment_id!r} already has a labeling session named {name[:100]!r}",
        {"experiment_id": experiment_id, "name": name[:250]},
    )


def _state_condition(state: str, now_ms: int) -> sa.ColumnElement[bool]:
    busy = sa.or_(I.c.submitted > 0, _active_lease_exists(now_ms))
    if state == "PENDING":
        return sa.and_(I.c.state == ITEM_OPEN, ~busy)
    if state == "IN_PROGRESS":
        return sa.and_(I.c.state == ITEM_OPEN, busy)
    return I.c.state == (ITEM_COMPLETED if state == "COMPLETED" else ITEM_SKIPPED)


def _rater_order(mark: RaterMark) -> tuple[int, str]:
    return mark.first_time_ms, mark.rater
