"""Logged models (SPEC §6): create, finalize, soft delete, params, tags, metrics; reads and
search are in ``logged_model_search.py``.

Logged models. A model lives in an active experiment (``require_active``: a shared row lock,
so creators don't wait for each other while a concurrent experiment delete waits for them).
Its ``version`` is the next number of its (experiment, name), taken from the counter row in
``logged_model_names`` by one ``INSERT … ON CONFLICT DO UPDATE SET last_version =
last_version + 1 RETURNING last_version`` inside the creating transaction: on PostgreSQL
concurrent creators of one name queue on that row (READ COMMITTED re-reads it once the first
commits), on SQLite on the database write lock, and a creation that rolls back (a failed
check, a repeated ``request_id``) rolls its increment back, so numbers have neither gaps nor
duplicates — several server processes included. Every write into an existing model first
locks its row (``FOR UPDATE``; SQLite holds the database), then checks that neither the model
nor its experiment is deleted (LOGGED_MODEL_DELETED, EXPERIMENT_DELETED); deleting is soft,
idempotent and allowed whatever the experiment's state. Params are write-once: the call's
keys are compared with the stored ones under that lock, and one different value rejects the
whole call (PARAM_ALREADY_SET). The tag limit is checked after the upsert, in the same
transaction (rolled back when exceeded). Metric points go to the history table and, per
(name, dataset, run), to the latest table through an upsert whose ``WHERE`` keeps the stored
point unless the new (step, time) is at least as large; within one call the last of equal
points wins. NaN is stored as NULL and read back as NaN; ±infinity is stored as is. A
``source_run_id``, metric ``run_id`` or ``dataset_id`` must name an existing row (RUN_NOT_FOUND,
DATASET_NOT_FOUND), but no foreign key ties them: deleting a run or dataset later leaves the
model readable. Traces name models by id without any check (ingestion never fails because a
model is unknown).
"""

from __future__ import annotations

import math
import secrets
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.domain import ACTIVE, DELETED, Page, SearchQuery
from store.errors import FailedPrecondition, NotFound, ResourceExhausted
from store.limits import TAGS_PER_ENTITY_MAX
from store.model_domain import PENDING, LoggedModel, ModelMetric, NewLoggedModel
from store.orm.base import table
from store.orm.datasets import DatasetRow
from store.orm.models import LoggedModelMetricRow, LoggedModelNameRow
from store.orm.runs import RunRow
from store.query.bulk import BulkWrite
from store.repositories import logged_model_search as reads
from store.repositories.experiments import parse_experiment_id
from store.repositories.logged_model_search import METRICS_OF, L, M, P, T, get_statement, to_domain

if TYPE_CHECKING:
    from store.uow import UnitOfWork

N = table(LoggedModelNameRow)
H = table(LoggedModelMetricRow)
R = table(RunRow)
D = table(DatasetRow)
_P = sa.bindparam

# Row lock until commit on PostgreSQL (SQLite's write transaction already holds the database).
_LOCK = (
    sa.select(M.c.model_id, M.c.experiment_id, M.c.status, M.c.lifecycle_stage)
    .where(M.c.model_id == _P("b_id"))
    .with_for_update()
)
_TOUCH = sa.update(M).where(M.c.model_id == _P("b_id")).values(update_time=_P("b_now"))
_FINALIZE = (
    sa.update(M)
    .where(M.c.model_id == _P("b_id"))
    .values(status=_P("b_status"), status_message=_P("b_message"), update_time=_P("b_now"))
)
_DELETE = sa.update(M).where(M.c.model_id == _P("b_id")).values(lifecycle_stage=DELETED, update_time=_P("b_now"))
_MODEL_COLUMNS = (
    "model_id", "experiment_id", "name", "version", "model_type", "source_run_id", "status", "status_message",
    "lifecycle_stage", "create_time", "update_time",
)  # fmt: skip
_INSERT_MODEL = sa.insert(M).values({c: _P(f"b_{c}") for c in _MODEL_COLUMNS})
_PARAMS_OF = sa.select(P.c.key, P.c.value).where(P.c.model_id == _P("b_id"))
_INSERT_PARAMS = BulkWrite(P, ("model_id", "key", "value"))
_UPSERT_TAGS = BulkWrite(T, ("model_id", "key", "value"), ("model_id", "key"), ("value",))
_COUNT_TAGS = sa.select(sa.func.count()).where(T.c.model_id == _P("b_id"))
_DELETE_TAG = sa.delete(T).where(T.c.model_id == _P("b_id"), T.c.key == _P("b_key"))
_POINT = ("name", "value", "step", "time", "dataset_id", "dataset_digest", "run_id")
_INSERT_HISTORY = BulkWrite(H, ("model_id", *_POINT))


@cache
def _next_version(dialect: str) -> Any:
    """Increment (or start at 1) the counter of (experiment, name) and return the new value."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(N).values(experiment_id=_P("b_exp"), name=_P("b_name"), last_version=1)
    return stmt.on_conflict_do_update(
        index_elements=[N.c.experiment_id, N.c.name], set_={"last_version": N.c.last_version + 1}
    ).returning(N.c.last_version)


@cache
def _upsert_latest(dialect: str) -> Any:
    """Insert a latest point, or replace the stored one if the new (step, time) is not older."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(L).values({c: _P(f"b_{c}") for c in ("model_id", *_POINT)})
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[L.c.model_id, L.c.name, L.c.dataset_id, L.c.run_id],
        set_={c: new[c] for c in ("value", "step", "time", "dataset_digest")},
        where=(new.step > L.c.step) | ((new.step == L.c.step) & (new.time >= L.c.time)),
    )


def new_model_id() -> str:
    return "m-" + secrets.token_hex(16)


def not_found(model_id: str) -> NotFound:
    return NotFound("LOGGED_MODEL_NOT_FOUND", f"logged model {model_id!r} does not exist", {"model_id": model_id})


class LoggedModelRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- reads ---------------------------------------------------------------------------

    def get(self, model_id: str) -> LoggedModel:
        """An active or deleted model."""
        rows = self._uow.fetch(get_statement(self._uow.dialect), {"b_id": model_id})
        if not rows:
            raise not_found(model_id)
        return to_domain(rows[0], self._uow.fetch(METRICS_OF, {"b_id": model_id}))

    def search(self, experiment_ids: Sequence[str], query: SearchQuery, view: str) -> Page[LoggedModel]:
        ids = [parse_experiment_id(e, "experiment_ids") for e in experiment_ids]
        models, token = reads.search(self._uow, ids, query, view)
        return Page(models, token)

    # -- writes --------------------------------------------------------------------------

    def create(self, new: NewLoggedModel, now_ms: int) -> LoggedModel:
        exp_id = self._uow.experiments.require_active(new.experiment_id)
        if new.source_run_id:
            self._require_runs([new.source_run_id])
        version = self._uow.fetch(_next_version(self._uow.dialect), {"b_exp": exp_id, "b_name": new.name})[0][0]
        model_id = new_model_id()
        row = {
            "model_id": model_id, "experiment_id": exp_id, "name": new.name, "version": version,
            "model_type": new.model_type or None, "source_run_id": new.source_run_id or None, "status": PENDING,
            "status_message": None, "lifecycle_stage": ACTIVE, "create_time": now_ms, "update_time": now_ms,
        }  # fmt: skip
        self._uow.fetch(_INSERT_MODEL, {f"b_{k}": v for k, v in row.items()})
        params, tags = dict(new.params or {}), dict(new.tags or {})
        _INSERT_PARAMS.run(self._uow, [(model_id, k, v) for k, v in sorted(params.items())])
        _UPSERT_TAGS.run(self._uow, [(model_id, k, v) for k, v in sorted(tags.items())])
        return LoggedModel(
            model_id, str(exp_id), new.name, version, new.model_type, new.source_run_id, PENDING, "", params, tags,
            (), ACTIVE, now_ms, now_ms,
        )  # fmt: skip

    def finalize(self, model_id: str, status: str, message: str, now_ms: int) -> LoggedModel:
        """PENDING → READY/FAILED; the same final status again only updates the message."""
        current = self._writable(model_id)
        if current.status not in (PENDING, status):
            raise FailedPrecondition(
                "LOGGED_MODEL_ALREADY_FINALIZED",
                f"logged model {model_id!r} is already {current.status}; it cannot become {status}",
                {"model_id": model_id, "status": current.status},
            )
        params = {"b_id": model_id, "b_status": status, "b_message": message or None, "b_now": now_ms}
        self._uow.fetch(_FINALIZE, params)
        return self.get(model_id)

    def delete(self, model_id: str, now_ms: int) -> LoggedModel:
        """Soft delete; deleting a deleted model changes nothing."""
        rows = self._uow.fetch(_LOCK, {"b_id": model_id})
        if not rows:
            raise not_found(model_id)
        if rows[0].lifecycle_stage != DELETED:
            self._uow.fetch(_DELETE, {"b_id": model_id, "b_now": now_ms})
        return self.get(model_id)

    def set_tags(self, model_id: str, tags: Mapping[str, str], now_ms: int) -> LoggedModel:
        self._writable(model_id)
        _UPSERT_TAGS.run(self._uow, [(model_id, k, v) for k, v in sorted(tags.items())])
        count = self._conn.execute(_COUNT_TAGS, {"b_id": model_id}).scalar_one()
        if count > TAGS_PER_ENTITY_MAX:
            raise ResourceExhausted(
                "TOO_MANY_TAGS",
                f"logged model {model_id!r} would have {count} tags; at most {TAGS_PER_ENTITY_MAX}",
                {"model_id": model_id, "limit": str(TAGS_PER_ENTITY_MAX)},
            )
        return self._touched(model_id, now_ms)

    def delete_tag(self, model_id: str, key: str, now_ms: int) -> LoggedModel:
        """Idempotent: removing a tag that is not there succeeds (and changes nothing)."""
        self._writable(model_id)
        if self._conn.execute(_DELETE_TAG, {"b_id": model_id, "b_key": key}).rowcount:
            return self._touched(model_id, now_ms)
        return self.get(model_id)

    def log_params(self, model_id: str, params: Mapping[str, str], now_ms: int) -> LoggedModel:
        """Write-once params: a key logged again with its value is a no-op, with another value
        FAILED_PRECONDITION (PARAM_ALREADY_SET) and nothing of the call is written."""
        self._writable(model_id)
        stored = dict(self._uow.fetch(_PARAMS_OF, {"b_id": model_id}))
        for key, value in sorted(params.items()):
            if key in stored and stored[key] != value:
                raise FailedPrecondition(
                    "PARAM_ALREADY_SET",
                    f"param {key[:100]!r} of logged model {model_id!r} is already set to another value",
                    {"model_id": model_id, "key": key[:250]},
                )
        fresh = [(model_id, k, v) for k, v in sorted(params.items()) if k not in stored]
        if not fresh:
            return self.get(model_id)
        _INSERT_PARAMS.run(self._uow, fresh)
        return self._touched(model_id, now_ms)

    def log_metrics(self, model_id: str, points: Sequence[ModelMetric], now_ms: int) -> None:
        """Append ``points`` to the history and move the latest points forward; all or nothing."""
        self._writable(model_id)
        if dataset_ids := {p.dataset_id for p in points if p.dataset_id}:
            self._require_datasets(dataset_ids)
        if run_ids := {p.run_id for p in points if p.run_id}:
            self._require_runs(run_ids)
        rows = [(model_id, *_point_row(p)) for p in points]
        _INSERT_HISTORY.run(self._uow, rows)
        self._uow.fetch_many(_upsert_latest(self._uow.dialect), _latest_rows(rows))
        self._uow.fetch(_TOUCH, {"b_id": model_id, "b_now": now_ms})

    # -- helpers -------------------------------------------------------------------------

    def _writable(self, model_id: str) -> Any:
        """Lock the model row; it and its experiment must exist and be active."""
        rows = self._uow.fetch(_LOCK, {"b_id": model_id})
        if not rows:
            raise not_found(model_id)
        row = rows[0]
        if row.lifecycle_stage == DELETED:
            raise FailedPrecondition(
                "LOGGED_MODEL_DELETED",
                f"logged model {model_id!r} is deleted: nothing can be written into it",
                {"model_id": model_id},
            )
        self._uow.experiments.require_active(str(row.experiment_id))
        return row

    def _touched(self, model_id: str, now_ms: int) -> LoggedModel:
        self._uow.fetch(_TOUCH, {"b_id": model_id, "b_now": now_ms})
        return self.get(model_id)

    def _require_runs(self, run_ids: Sequence[str] | set[str]) -> None:
        wanted = sorted(set(run_ids))
        found = set(self._conn.execute(sa.select(R.c.run_id).where(R.c.run_id.in_(wanted))).scalars())
        if missing := [r for r in wanted if r not in found]:
            raise NotFound("RUN_NOT_FOUND", f"run {missing[0]!r} does not exist", {"run_id": missing[0]})

    def _require_datasets(self, dataset_ids: set[str]) -> None:
        wanted = sorted(dataset_ids)
        found = set(self._conn.execute(sa.select(D.c.dataset_id).where(D.c.dataset_id.in_(wanted))).scalars())
        if missing := [d for d in wanted if d not in found]:
            raise NotFound("DATASET_NOT_FOUND", f"dataset {missing[0]!r} does not exist", {"dataset_id": missing[0]})


def _point_row(p: ModelMetric) -> tuple[Any, ...]:
    value = None if math.isnan(p.value) else p.value
    return (p.name, value, p.step, p.time_ms, p.dataset_id, p.dataset_digest, p.run_id)


def _latest_rows(rows: Sequence[tuple[Any, ...]]) -> list[dict[str, Any]]:
    """Per (model, name, dataset, run) the call's latest point (the last of equal ones), sorted by
    key (the lock order of concurrent writers)."""
    best: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for row in rows:
        key = (row[0], row[1], row[5], row[7])
        held = best.get(key)
        if held is None or (row[3], row[4]) >= (held[3], held[4]):
            best[key] = row
    names = ("model_id", *_POINT)
    return [{f"b_{c}": v for c, v in zip(names, best[k], strict=True)} for k in sorted(best)]
