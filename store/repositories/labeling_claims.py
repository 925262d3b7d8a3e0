"""Claims, submissions, skips and ListSubmissions of labeling sessions (SPEC §8.2–§8.3):
``LabelingClaims``, a mixin of ``LabelingRepository`` (``labeling.py``); statements in
``labeling_sql.py``.

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
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from store.domain import AssessmentSource, Page
from store.label_domain import LabelSchemaDef, assessment_value
from store.labeling_domain import (
    ITEM_COMPLETED,
    ITEM_OPEN,
    ITEM_SKIPPED,
    RATER_SKIPPED,
    SUBMITTED,
    Claim,
    Item,
    LabelInput,
    Lease,
    RaterMark,
    Session,
    Submission,
    cannot_complete,
    check_free_slot,
    check_rater,
    checked_labels,
    precondition,
)
from store.query.keyset import OrderTerm, apply_keyset, binding_of, order_text, split_page
from store.repositories.assessments import NewAssessment
from store.repositories.label_schemas import schema_of
from store.repositories.labeling_sql import (
    _CANDIDATES_SKIP_LOCKED,
    _CANDIDATES_WAIT,
    _COUNT_SUBMISSION,
    _DELETE_LEASE,
    _GET_SESSION,
    _ITEM_PEOPLE,
    _LOCK_ITEM,
    _OWN_LEASE,
    _PREVIOUS_LABELS,
    _RENEW,
    _SCHEMA_IDS,
    _SESSION_AND_SCHEMAS,
    _SET_ITEM_STATE,
    _SHARE_SESSION,
    _UPSERT_LABELS,
    IR,
    LL,
    A,
    I,
    _closed,
    _dumps,
    _item,
    _session,
    _upsert_lease,
    _upsert_rater,
    item_not_found,
    session_not_found,
)

if TYPE_CHECKING:
    from store.uow import UnitOfWork


class LabelingClaims:
    """ClaimNextItem, SubmitLabels, SkipItem and ListSubmissions, and the session and item
    helpers they share with ``LabelingRepository``, which inherits them."""

    _uow: UnitOfWork
    _conn: Connection

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


def _rater_order(mark: RaterMark) -> tuple[int, str]:
    return mark.first_time_ms, mark.rater
