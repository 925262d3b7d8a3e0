"""Labeling sessions and their items (SPEC §8.2–§8.3): ``LabelingRepository``, ``uow.labeling``.

Tables in ``store/orm/labeling.py``; statements and row converters in ``labeling_sql.py``.
Claims, submissions and skips come from the ``LabelingClaims`` mixin (``labeling_claims.py``),
which also describes the locking protocol: of its writers here, update and add items take an
exclusive lock on the session row, remove items a shared one and then the item rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.domain import Page
from store.errors import AlreadyExists, NotFound
from store.labeling_domain import (
    ITEM_COMPLETED,
    ITEM_OPEN,
    ITEM_SKIPPED,
    SUBMITTED,
    Item,
    ItemSource,
    Lease,
    NewSession,
    RaterMark,
    Session,
    SessionChanges,
    precondition,
)
from store.query.keyset import OrderTerm
from store.repositories.experiments import parse_experiment_id
from store.repositories.labeling_claims import LabelingClaims
from store.repositories.labeling_sql import (
    _ADVANCE,
    _DELETE_SCHEMAS,
    _DELETE_SESSION,
    _GET_SESSION,
    _HAS_SUBMISSIONS,
    _INSERT_ITEMS,
    _INSERT_SCHEMAS,
    _INSERT_SESSION,
    _ITEM_COLUMNS,
    _LOCK_SESSION,
    _NAME_TAKEN,
    _PROGRESS,
    _SCHEMA_IDS,
    _SESSION_COLUMNS,
    DR,
    IR,
    LE,
    SS,
    TR,
    I,
    S,
    _active_lease_exists,
    _closed,
    _dumps,
    _item,
    _progress,
    _progress_columns,
    _session,
    item_not_found,
    new_item_id,
    new_session_id,
    session_not_found,
)
from store.repositories.traces import trace_not_found

if TYPE_CHECKING:
    from store.uow import UnitOfWork


class LabelingRepository(LabelingClaims):
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

    # -- helpers ---------------------------------------------------------------------------

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
                    "DATASET_RECORD_NOT_FOUND",
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
