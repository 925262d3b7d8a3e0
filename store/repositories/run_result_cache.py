"""Keeping the run result cache current (``run_result_state``; SPEC §7).

**Invalidation.** Every write that can change a run's results calls ``invalidate_runs`` (or
``invalidate_traces``) in its own transaction: creating, updating, overriding or deleting an
assessment with a ``run_id``, linking traces to a run, setting or removing a trace's
``mlflow.eval.requestId`` tag, deleting traces. It upserts the runs' state rows and raises their
``generation``; the row lock it takes is held to commit, so a rebuild running at the same time
either waits for the write (and sees it) or finishes first (and its generation is outdated by
the time the write commits).

**Rebuild.** ``ensure_current(db, part, run_ids)`` finds the runs whose part (summaries for
GetRunResults, keyed pairs for CompareRuns: each reader pays only for its own) was computed
from an older generation and rebuilds each in a write transaction: lock the state row,
recompute with the live statements of ``run_results.py``, replace the cached rows and record
the generation computed from. Two readers rebuilding the same run serialize on the state row;
the second finds it current and does nothing.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.orm.base import table
from store.orm.runs import RunResultNameRow, RunResultPairRow, RunResultStateRow, RunRow
from store.orm.traces import AssessmentRow
from store.query.raw import ForIds
from store.repositories.run_results import keyed_values

if TYPE_CHECKING:
    from store.uow import Database, UnitOfWork

S = table(RunResultStateRow)
N = table(RunResultNameRow)
P = table(RunResultPairRow)
R = table(RunRow)
A = table(AssessmentRow)
_P = sa.bindparam


def _state_rows(insert: Any, bump: bool, condition: Any) -> Any:
    """State rows for the existing runs among ``condition``'s: new ones at generation 1 (bump)
    or 0; existing ones raised by one (bump) or left alone."""
    source = sa.select(R.c.run_id, sa.literal(1 if bump else 0)).where(condition).order_by(R.c.run_id)
    stmt = insert(S).from_select([S.c.run_id, S.c.generation], source)
    if bump:
        return stmt.on_conflict_do_update(index_elements=[S.c.run_id], set_={"generation": S.c.generation + 1})
    return stmt.on_conflict_do_nothing(index_elements=[S.c.run_id])


# Built once per backend and kind and run on the driver's cursor (``fetch_ids``): built on each
# call, the statement's construction and compilation cost more CPU than the rest of a
# BatchCreateAssessments' writes.
_STATE_ROWS = {
    (dialect, bump): ForIds.build(R.c.run_id, partial(_state_rows, insert, bump))
    for dialect, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
    for bump in (True, False)
}


def _upsert(uow: UnitOfWork, run_ids: Sequence[str], bump: bool) -> None:
    uow.fetch_ids(_STATE_ROWS[(uow.dialect, bump)], run_ids)


def invalidate_runs(uow: UnitOfWork, run_ids: Iterable[str | None]) -> None:
    """Mark the runs' cached results outdated (in the caller's transaction)."""
    ids = sorted({run_id for run_id in run_ids if run_id})
    if ids:
        _upsert(uow, ids, bump=True)


def invalidate_traces(uow: UnitOfWork, trace_ids: Iterable[str]) -> None:
    """Mark outdated the runs that have assessments on these traces."""
    ids = sorted(set(trace_ids))
    if not ids:
        return
    runs = uow.conn.execute(
        sa.select(A.c.run_id).where(A.c.trace_id.in_(ids), A.c.run_id.is_not(None)).distinct()
    ).scalars()
    invalidate_runs(uow, list(runs))


NAMES, PAIRS = "names", "pairs"
_DONE = {NAMES: S.c.names_generation, PAIRS: S.c.pairs_generation}


def _outdated(part: str, condition: Any) -> sa.Select[Any]:
    return sa.select(R.c.run_id).where(
        condition, ~sa.exists().where(S.c.run_id == R.c.run_id, _DONE[part] == S.c.generation)
    )


_OUTDATED = {part: ForIds.build(R.c.run_id, partial(_outdated, part)) for part in _DONE}


def ensure_current(db: Database, part: str, run_ids: Sequence[str]) -> None:
    """Rebuild ``part`` (NAMES: GetRunResults' summaries; PAIRS: CompareRuns' keyed values) of
    those of the runs whose cache is outdated (missing runs are left to the reader's
    RUN_NOT_FOUND)."""
    outdated = db.read(lambda uow: [row.run_id for row in uow.fetch_ids(_OUTDATED[part], run_ids)])
    for run_id in sorted(outdated):
        db.write(partial(rebuild, part=part, run_id=run_id))


_STATE = sa.select(S.c.generation, S.c.names_generation, S.c.pairs_generation).where(S.c.run_id == _P("b_run"))
_LOCK_STATE = {"postgresql": _STATE.with_for_update(), "sqlite": _STATE}  # SQLite: the write lock is the database's
_DELETE_NAMES = sa.delete(N).where(N.c.run_id == _P("b_run"))
_NAME_COLUMNS = ("run_id", "name", "count", "numeric_count", "mean", "min", "max", "p50", "p90", "pass_rate", "errors")
_INSERT_NAMES = sa.insert(N).values({c: _P(c) for c in _NAME_COLUMNS})
_NAMES_DONE = (
    sa.update(S).where(S.c.run_id == _P("b_run")).values(names_generation=_P("b_gen"), trace_count=_P("b_traces"))
)


def rebuild(uow: UnitOfWork, *, part: str, run_id: str) -> None:
    _upsert(uow, [run_id], bump=False)
    rows = uow.fetch(_LOCK_STATE[uow.dialect], {"b_run": run_id})
    if not rows:
        return  # no such run
    state = rows[0]
    if part == NAMES and state.names_generation != state.generation:
        _rebuild_names(uow, run_id, state.generation)
    elif part == PAIRS and state.pairs_generation != state.generation:
        _rebuild_pairs(uow, run_id, state.generation)


def _rebuild_names(uow: UnitOfWork, run_id: str, generation: int) -> None:
    results = uow.run_results.live_results(run_id)
    uow.fetch(_DELETE_NAMES, {"b_run": run_id})
    if results.assessments:
        rows = [
            (run_id, s.name, s.count, s.numeric_count, s.mean, s.min, s.max, s.p50, s.p90, s.pass_rate, s.error_count)
            for s in results.assessments
        ]
        uow.fetch_many(_INSERT_NAMES, [dict(zip(_NAME_COLUMNS, row, strict=True)) for row in rows])
    uow.fetch(_NAMES_DONE, {"b_run": run_id, "b_gen": generation, "b_traces": results.trace_count})


def _rebuild_pairs(uow: UnitOfWork, run_id: str, generation: int) -> None:
    conn = uow.conn
    conn.execute(sa.delete(P).where(P.c.run_id == run_id))
    columns = ["run_id", "name", "pair_key", "value", "trace_id"]
    conn.execute(sa.insert(P).from_select(columns, keyed_values(run_id)))
    counts = conn.execute(sa.select(P.c.name, sa.func.count()).where(P.c.run_id == run_id).group_by(P.c.name))
    values = {"pairs_generation": generation, "pair_keys": json.dumps({row[0]: row[1] for row in counts})}
    conn.execute(sa.update(S).where(S.c.run_id == run_id).values(values))
