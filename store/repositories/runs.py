"""Evaluation runs (SPEC §7): create, read, update, soft delete, params, metrics, tags, trace links.

Writes into a run start by locking its row: ``_touch`` bumps ``update_time`` of an *active* run
(an UPDATE, which holds the row until commit on PostgreSQL; SQLite's write transaction already
holds the database), so concurrent writers of one run queue and the write-once check of params
cannot race. A run is deleted either by DeleteRun or together with its experiment
(``deleted_with_experiment``, set and cleared by ``follow_experiment``): undeleting the
experiment restores exactly the runs its deletion took, never one deleted on its own.

Metrics: every point goes to the history; the latest point per name (highest step, then
latest time; a later call wins a tie) is upserted into ``run_latest_metrics`` with a guarded
``ON CONFLICT DO UPDATE … WHERE``, so late-arriving older points never replace it. NaN is
stored as NULL (SQLite cannot store NaN) and read back as NaN; ±infinity is stored as is.
"""

from __future__ import annotations

import json
import math
import uuid
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.domain import ACTIVE, DELETED, Page, SearchQuery
from store.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from store.limits import TAGS_PER_ENTITY_MAX
from store.orm.base import table
from store.orm.datasets import DatasetRow, DatasetVersionRow
from store.orm.models import LoggedModelRow
from store.orm.runs import RunMetricRow, TraceRunLinkRow
from store.orm.traces import TraceRow
from store.query.bulk import BulkWrite
from store.repositories.dataset_sql import dataset_not_found, version_not_found
from store.repositories.experiments import parse_experiment_id
from store.repositories.run_result_cache import invalidate_runs
from store.repositories.run_search import LM, RP, RT, RUN_COLUMNS, R, search_rows
from store.run_domain import RUNNING, TERMINAL, NewRun, Run, RunChanges, RunDataset, RunMetric

if TYPE_CHECKING:
    from store.uow import UnitOfWork

M = table(RunMetricRow)
L = table(TraceRunLinkRow)
D = table(DatasetRow)
V = table(DatasetVersionRow)
LMOD = table(LoggedModelRow)
TR = table(TraceRow)
_P = sa.bindparam

_GET = sa.select(*RUN_COLUMNS).where(R.c.run_id == _P("b_id"))
_STAGE = sa.select(R.c.experiment_id, R.c.lifecycle_stage).where(R.c.run_id == _P("b_id"))
_TOUCH = (
    sa.update(R)
    .where(R.c.run_id == _P("b_id"), R.c.lifecycle_stage == ACTIVE)
    .values(update_time=_P("b_now"))
    .returning(R.c.run_id)
)
_LOCK = sa.select(R.c.start_time, R.c.status, R.c.end_time, R.c.lifecycle_stage).where(R.c.run_id == _P("b_id"))
_INSERT = sa.insert(R)
_UPDATE = sa.update(R).where(R.c.run_id == _P("b_id"))
_DELETE = (
    sa.update(R)
    .where(R.c.run_id == _P("b_id"), sa.or_(R.c.lifecycle_stage == ACTIVE, R.c.deleted_with_experiment))
    .values(lifecycle_stage=DELETED, deleted_with_experiment=False, update_time=_P("b_now"))
)
_UNDELETE = (
    sa.update(R)
    .where(R.c.run_id == _P("b_id"), R.c.lifecycle_stage == DELETED)
    .values(lifecycle_stage=ACTIVE, deleted_with_experiment=False, update_time=_P("b_now"))
)
_CASCADE_DELETE = (
    sa.update(R)
    .where(R.c.experiment_id == _P("b_exp"), R.c.lifecycle_stage == ACTIVE)
    .values(lifecycle_stage=DELETED, deleted_with_experiment=True, update_time=_P("b_now"))
)
_CASCADE_RESTORE = (
    sa.update(R)
    .where(R.c.experiment_id == _P("b_exp"), R.c.lifecycle_stage == DELETED, R.c.deleted_with_experiment)
    .values(lifecycle_stage=ACTIVE, deleted_with_experiment=False, update_time=_P("b_now"))
)
_IDS: sa.BindParameter[Any] = _P("b_ids", expanding=True)
_PARAMS_OF = sa.select(RP.c.run_id, RP.c.key, RP.c.value).where(RP.c.run_id.in_(_IDS))
_TAGS_OF = sa.select(RT.c.run_id, RT.c.key, RT.c.value).where(RT.c.run_id.in_(_IDS))
_METRICS_OF = (
    sa.select(LM.c.run_id, LM.c.name, LM.c.value, LM.c.step, LM.c.time).where(LM.c.run_id.in_(_IDS)).order_by(LM.c.name)
)
_PARAMS_SET = sa.select(RP.c.key, RP.c.value).where(
    RP.c.run_id == _P("b_id"), RP.c.key.in_(_P("b_keys", expanding=True))
)
_INSERT_PARAMS = BulkWrite(RP, ("run_id", "key", "value"))
_INSERT_TAGS = BulkWrite(RT, ("run_id", "key", "value"))
_INSERT_HISTORY = BulkWrite(M, ("run_id", "name", "value", "step", "time"))
_UPDATE_TAG = sa.update(RT).where(RT.c.run_id == _P("b_id"), RT.c.key == _P("b_key")).values(value=_P("b_value"))
_COUNT_TAGS = sa.select(sa.func.count()).where(RT.c.run_id == _P("b_id"))
_DELETE_TAG = sa.delete(RT).where(RT.c.run_id == _P("b_id"), RT.c.key == _P("b_key"))
_DATASET = sa.select(D.c.version, D.c.digest).where(D.c.dataset_id == _P("b_id"))
_VERSION_DIGEST = sa.select(V.c.digest).where(V.c.dataset_id == _P("b_id"), V.c.version == _P("b_version"))
_MODEL = sa.select(LMOD.c.model_id).where(LMOD.c.model_id == _P("b_id"))


def not_found(run_id: str) -> NotFound:
    return NotFound("RUN_NOT_FOUND", f"run {run_id!r} does not exist", {"run_id": run_id})


def deleted(run_id: str, message: str = "nothing can be written into a deleted run") -> FailedPrecondition:
    return FailedPrecondition("RUN_DELETED", f"run {run_id!r} is deleted: {message}", {"run_id": run_id})


class RunRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- reads ---------------------------------------------------------------------------

    def get(self, run_id: str) -> Run:
        rows = self._uow.fetch(_GET, {"b_id": run_id})
        if not rows:
            raise not_found(run_id)
        return self._complete(rows)[0]

    def search(self, experiment_ids: Sequence[str], query: SearchQuery, view: str) -> Page[Run]:
        ids = sorted({parse_experiment_id(e, "experiment_ids") for e in experiment_ids})
        rows, token = search_rows(self._uow, ids, query, view)
        return Page(self._complete(rows), token)

    # -- run writes ----------------------------------------------------------------------

    def create(self, new: NewRun, now_ms: int) -> Run:
        exp_id = self._uow.experiments.require_active(new.experiment_id)
        dataset = self._pin(new.dataset_id, new.dataset_version) if new.dataset_id else None
        if new.model_id and not self._uow.fetch(_MODEL, {"b_id": new.model_id}):
            raise NotFound(
                "LOGGED_MODEL_NOT_FOUND", f"logged model {new.model_id!r} does not exist", {"model_id": new.model_id}
            )
        run_id = uuid.uuid4().hex
        self._conn.execute(
            _INSERT,
            {
                "run_id": run_id, "experiment_id": exp_id, "name": new.name, "status": RUNNING,
                "start_time": now_ms, "end_time": None, "dataset_id": dataset and dataset.dataset_id,
                "dataset_version": dataset and dataset.version, "dataset_digest": dataset and dataset.digest,
                "model_id": new.model_id or None, "lifecycle_stage": ACTIVE, "deleted_with_experiment": False,
                "create_time": now_ms, "update_time": now_ms,
            },
        )  # fmt: skip
        _INSERT_PARAMS.run(self._uow, [(run_id, k, v) for k, v in sorted((new.params or {}).items())])
        _INSERT_TAGS.run(self._uow, [(run_id, k, v) for k, v in sorted((new.tags or {}).items())])
        return self.get(run_id)

    def update(self, run_id: str, changes: RunChanges, now_ms: int) -> Run:
        """Apply ``changes``. A status becoming terminal sets ``end_time`` to now unless it is
        given (or the run already ended); becoming RUNNING again clears it."""
        row = self._conn.execute(_LOCK.with_for_update(), {"b_id": run_id}).first()
        if row is None:
            raise not_found(run_id)
        if row.lifecycle_stage == DELETED:
            raise deleted(run_id, "a deleted run cannot be updated")
        end = row.end_time
        if changes.end_time_ms is not None:
            if changes.end_time_ms < row.start_time:
                raise InvalidArgument.field("run.end_time", "must not be before the run's start_time")
            end = changes.end_time_ms
        elif changes.status is not None and changes.status != row.status:
            if changes.status in TERMINAL and (row.status == RUNNING or end is None):
                end = now_ms
            elif changes.status == RUNNING:
                end = None
        values: dict[str, Any] = {"end_time": end, "update_time": now_ms}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.status is not None:
            values["status"] = changes.status
        self._conn.execute(_UPDATE.values(values), {"b_id": run_id})
        return self.get(run_id)

    def delete(self, run_id: str, now_ms: int) -> Run:
        """Soft delete; idempotent. A run already deleted with its experiment stays deleted
        when the experiment is restored (the caller deleted it on its own as well)."""
        self._conn.execute(_DELETE, {"b_id": run_id, "b_now": now_ms})
        return self.get(run_id)

    def undelete(self, run_id: str, now_ms: int) -> Run:
        row = self._conn.execute(_STAGE.with_for_update(), {"b_id": run_id}).first()
        if row is None:
            raise not_found(run_id)
        self._uow.experiments.require_active(str(row.experiment_id))
        self._conn.execute(_UNDELETE, {"b_id": run_id, "b_now": now_ms})
        return self.get(run_id)

    def follow_experiment(self, experiment_id: int, stage: str, now_ms: int) -> None:
        """The runs' side of deleting (``deleted``) or restoring (``active``) their experiment."""
        stmt = _CASCADE_DELETE if stage == DELETED else _CASCADE_RESTORE
        self._conn.execute(stmt, {"b_exp": experiment_id, "b_now": now_ms})

    # -- params, metrics, tags -----------------------------------------------------------

    def log_params(self, run_id: str, params: Mapping[str, str], now_ms: int) -> None:
        """Write-once: an equal value is a no-op, another value PARAM_ALREADY_SET (nothing written)."""
        self._touch(run_id, now_ms)
        rows = self._conn.execute(_PARAMS_SET, {"b_id": run_id, "b_keys": list(params)})
        stored: dict[str, str] = {key: value for key, value in rows}  # noqa: C416 - rows are Row objects
        clashes = sorted(k for k, v in stored.items() if params[k] != v)
        if clashes:
            raise FailedPrecondition(
                "PARAM_ALREADY_SET",
                f"run {run_id!r} already has other values for params {', '.join(map(repr, clashes[:10]))}",
                {"run_id": run_id, "keys": ",".join(clashes[:50])},
            )
        _INSERT_PARAMS.run(self._uow, [(run_id, k, v) for k, v in sorted(params.items()) if k not in stored])

    def log_metrics(self, run_id: str, points: Sequence[RunMetric], now_ms: int) -> None:
        self._touch(run_id, now_ms)
        rows = [(run_id, p.name, None if math.isnan(p.value) else p.value, p.step, p.time_ms) for p in points]
        _INSERT_HISTORY.run(self._uow, rows)
        latest: dict[str, tuple[str, str, float | None, int, int]] = {}
        for row in rows:  # the latest point of each name in this call; a later one wins a tie
            best = latest.get(row[1])
            if best is None or (row[3], row[4]) >= (best[3], best[4]):
                latest[row[1]] = row
        upserts = [
            {"b_run": r[0], "b_name": r[1], "b_value": r[2], "b_step": r[3], "b_time": r[4]}
            for _, r in sorted(latest.items())
        ]
        self._conn.execute(_upsert_latest(self._uow.dialect), upserts)

    def set_tag(self, run_id: str, key: str, value: str, now_ms: int) -> None:
        self._touch(run_id, now_ms)
        if self._conn.execute(_UPDATE_TAG, {"b_id": run_id, "b_key": key, "b_value": value}).rowcount:
            return
        if self._conn.execute(_COUNT_TAGS, {"b_id": run_id}).scalar_one() >= TAGS_PER_ENTITY_MAX:
            raise ResourceExhausted(
                "TOO_MANY_TAGS",
                f"run {run_id!r} already has {TAGS_PER_ENTITY_MAX} tags",
                {"run_id": run_id, "limit": str(TAGS_PER_ENTITY_MAX)},
            )
        _INSERT_TAGS.run(self._uow, [(run_id, key, value)])

    def delete_tag(self, run_id: str, key: str, now_ms: int) -> None:
        self._touch(run_id, now_ms)
        self._conn.execute(_DELETE_TAG, {"b_id": run_id, "b_key": key})

    # -- trace links ---------------------------------------------------------------------

    def link_traces(self, run_id: str, links: Mapping[str, str | None], now_ms: int) -> None:
        """Link traces (id -> dataset record id or None) to an active run, in one upsert.

        The upsert inserts only traces that exist and returns every one it linked; when some
        are missing, TRACE_NOT_FOUND rolls the whole call back. Linking again replaces the
        link's record with the one given now (none: NULL).
        """
        row = self._conn.execute(_STAGE.with_for_update(read=True), {"b_id": run_id}).first()
        if row is None:
            raise not_found(run_id)
        if row.lifecycle_stage == DELETED:
            raise deleted(run_id, "traces cannot be linked to a deleted run")
        params = {"b_run": run_id, "b_links": json.dumps(dict(links)), "b_now": now_ms}
        linked = {r[0] for r in self._uow.fetch(_link_statement(self._uow.dialect), params)}
        missing = sorted(set(links) - linked)
        if missing:
            raise NotFound(
                "TRACE_NOT_FOUND",
                f"{len(missing)} trace(s) do not exist: {', '.join(missing[:5])}; nothing was linked",
                {"run_id": run_id, "trace_ids": ",".join(missing)},
            )
        invalidate_runs(self._uow, [run_id])

    # -- helpers -------------------------------------------------------------------------

    def _touch(self, run_id: str, now_ms: int) -> None:
        """Bump ``update_time`` of an active run, locking its row; NOT_FOUND / RUN_DELETED otherwise."""
        if self._uow.fetch(_TOUCH, {"b_id": run_id, "b_now": now_ms}):
            return
        if self._uow.fetch(_STAGE, {"b_id": run_id}):
            raise deleted(run_id)
        raise not_found(run_id)

    def _pin(self, dataset_id: str, version: int) -> RunDataset:
        """The dataset version a run pins: the current one for 0, else ``version`` (≤ current)."""
        rows = self._uow.fetch(_DATASET, {"b_id": dataset_id})
        if not rows:
            raise dataset_not_found(dataset_id)
        current, digest = int(rows[0][0]), rows[0][1]
        if version in (0, current):
            return RunDataset(dataset_id, current, digest)
        if version > current:
            raise version_not_found(dataset_id, version, current)
        found = self._uow.fetch(_VERSION_DIGEST, {"b_id": dataset_id, "b_version": version})
        if not found:
            raise version_not_found(dataset_id, version, current)
        return RunDataset(dataset_id, version, found[0][0])

    def _complete(self, rows: Sequence[Any]) -> list[Run]:
        """Runs of ``rows`` with their params, tags and latest metrics: three queries in all."""
        if not rows:
            return []
        ids = {"b_ids": [r[0] for r in rows]}
        params: dict[str, dict[str, str]] = {}
        tags: dict[str, dict[str, str]] = {}
        metrics: dict[str, list[RunMetric]] = {}
        for run_id, key, value in self._conn.execute(_PARAMS_OF, ids):
            params.setdefault(run_id, {})[key] = value
        for run_id, key, value in self._conn.execute(_TAGS_OF, ids):
            tags.setdefault(run_id, {})[key] = value
        for run_id, name, value, step, time in self._conn.execute(_METRICS_OF, ids):
            point = RunMetric(name, math.nan if value is None else float(value), step, time)
            metrics.setdefault(run_id, []).append(point)
        return [_domain(r, params.get(r[0], {}), tags.get(r[0], {}), metrics.get(r[0], [])) for r in rows]


def _domain(row: Any, params: dict[str, str], tags: dict[str, str], metrics: list[RunMetric]) -> Run:
    (run_id, exp_id, name, status, start, end, dataset_id, version, digest, model_id, stage, updated) = row[:12]
    dataset = RunDataset(dataset_id, int(version), digest or "") if dataset_id else None
    return Run(
        run_id=run_id,
        experiment_id=str(exp_id),
        name=name,
        status=status,
        start_time_ms=start,
        end_time_ms=end,
        params=params,
        metrics=tuple(metrics),
        tags=tags,
        dataset=dataset,
        model_id=model_id,
        lifecycle_stage=stage,
        update_time_ms=updated,
    )


@cache
def _upsert_latest(dialect: str) -> Any:
    """Upsert of one latest point that only replaces an older one: (step, time) >= stored."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(LM).values(
        run_id=_P("b_run"),
        name=_P("b_name"),
        value=_P("b_value", type_=sa.Float),
        step=_P("b_step", type_=sa.BigInteger),
        time=_P("b_time", type_=sa.BigInteger),
    )
    new = stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=[LM.c.run_id, LM.c.name],
        set_={"value": new.value, "step": new.step, "time": new.time},
        where=sa.or_(new.step > LM.c.step, sa.and_(new.step == LM.c.step, new.time >= LM.c.time)),
    )


@cache
def _link_statement(dialect: str) -> Any:
    """``INSERT INTO trace_run_links SELECT … FROM <the JSON object of links> JOIN traces …
    ON CONFLICT (run_id, trace_id) DO UPDATE SET dataset_record_id … RETURNING trace_id``.

    The links travel as one JSON object ``{trace_id: record_id or null}``, expanded by
    ``jsonb_each_text`` (PostgreSQL) or ``json_each`` (SQLite). The SELECT has a WHERE clause
    (not a JOIN … ON), which SQLite needs to parse the ON CONFLICT that follows.
    """
    if dialect == "postgresql":
        pairs: Any = sa.func.jsonb_each_text(sa.cast(_P("b_links", type_=sa.Text), postgresql.JSONB))
        insert: Any = postgresql.insert
    else:
        pairs = sa.func.json_each(_P("b_links", type_=sa.Text))
        insert = sqlite.insert
    links = pairs.table_valued("key", "value").alias("links")
    source = sa.select(
        sa.cast(_P("b_run", type_=sa.String), sa.String),
        links.c.key,
        links.c.value,
        sa.cast(_P("b_now", type_=sa.BigInteger), sa.BigInteger),
    ).where(TR.c.trace_id == links.c.key)
    stmt = insert(L).from_select(["run_id", "trace_id", "dataset_record_id", "create_time"], source)
    return stmt.on_conflict_do_update(
        index_elements=[L.c.run_id, L.c.trace_id], set_={"dataset_record_id": stmt.excluded.dataset_record_id}
    ).returning(L.c.trace_id)
