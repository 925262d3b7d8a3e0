"""Results of evaluation runs and their comparison (SPEC §7), computed in SQL.

A run's results are its valid feedback assessments (``assessments.run_id`` = the run); values
count through their numeric view (``store/query/assessment_values.py``).

**GetRunResults** groups them by name in one statement: counts, mean, min, max, errors, pass
rate, and the 50th/90th percentiles. Percentiles interpolate linearly between the closest
ranks: ``percentile_cont`` on PostgreSQL; on SQLite, which has no ordered-set aggregates, a
window query numbers each name's values in order and returns, per name and percentile, the two
neighbouring values and the fraction between them (a handful of numbers per name), which
``_interpolate`` combines exactly as ``percentile_cont`` does.

**CompareRuns** pairs the traces of the baseline and of each candidate by a *pair key*: the
dataset record the trace was linked with (``trace_run_links.dataset_record_id``), else the
trace's ``mlflow.eval.requestId`` tag; traces with neither are not paired. A run's value for a
(pair key, name) is the mean of its valid, non-error, numeric feedback of that name on the
traces with that key (``keyed_values``).

Both are served from a per-run cache (``run_result_names``, ``run_result_pairs``) that
``run_result_cache.py`` rebuilds from the statements here whenever a write has changed the
run since: re-aggregating 60,000 assessments costs about a second on PostgreSQL, reading the
cache a few milliseconds. A comparison merges the baseline's cached pairs with each
candidate's in primary-key order (name, pair key; code-point order on both backends): one
statement for the summary and one per candidate page of changed pairs, whose keyset cursor is
(candidate position, name, pair key).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.errors import NotFound
from store.orm.base import table
from store.orm.runs import RunResultNameRow, RunResultPairRow, RunResultStateRow, RunRow, TraceRunLinkRow
from store.orm.traces import AssessmentRow, TraceTagRow
from store.query.assessment_values import numeric_view, pass_view
from store.query.keyset import binding_of
from store.query.raw import ForIds

if TYPE_CHECKING:
    from store.uow import UnitOfWork

A = table(AssessmentRow)
L = table(TraceRunLinkRow)
TT = table(TraceTagRow)
R = table(RunRow)
S = table(RunResultStateRow)
N = table(RunResultNameRow)
P = table(RunResultPairRow)
REQUEST_ID_TAG = "mlflow.eval.requestId"
_PERCENTILES = (0.5, 0.9)


@dataclass(frozen=True, slots=True)
class AssessmentSummary:
    name: str
    count: int
    numeric_count: int
    mean: float | None
    min: float | None
    max: float | None
    p50: float | None
    p90: float | None
    pass_rate: float | None
    error_count: int


@dataclass(frozen=True, slots=True)
class RunResults:
    run_id: str
    trace_count: int
    assessments: list[AssessmentSummary]


@dataclass(frozen=True, slots=True)
class AssessmentComparison:
    name: str
    paired_count: int
    baseline_mean: float | None
    candidate_mean: float | None
    mean_difference: float | None
    wins: int
    losses: int
    ties: int
    baseline_only: int
    candidate_only: int


@dataclass(frozen=True, slots=True)
class ChangedPair:
    candidate_run_id: str
    name: str
    pair_key: str
    baseline_trace_id: str
    candidate_trace_id: str
    baseline_value: float
    candidate_value: float


@dataclass(frozen=True, slots=True)
class Comparison:
    summaries: dict[str, list[AssessmentComparison]]  # candidate run id -> per name
    changed: list[ChangedPair]
    next_page_token: str


def run_not_found(run_id: str) -> NotFound:
    return NotFound("RUN_NOT_FOUND", f"evaluation run {run_id!r} does not exist", {"run_id": run_id})


_P = sa.bindparam
_RUNS_EXIST = ForIds.build(R.c.run_id, lambda one_of: sa.select(R.c.run_id).where(one_of))
_FEEDBACK = (A.c.valid.is_(True), A.c.kind == "feedback")


class RunResultsReader:
    """Reads results and comparisons from the run result cache (``run_result_cache.py``; the
    caller makes it current first) and computes them live for the cache's rebuilds."""

    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow

    def _require_runs(self, run_ids: Sequence[str]) -> None:
        found = {row.run_id for row in self._uow.fetch_ids(_RUNS_EXIST, run_ids)}
        for run_id in run_ids:
            if run_id not in found:
                raise run_not_found(run_id)

    # -- GetRunResults ----------------------------------------------------------------------

    def results(self, run_id: str) -> RunResults:
        """From the cache; computed live when the run has never been cached."""
        self._require_runs([run_id])
        state = self._uow.fetch(_CACHED_STATE, {"b_run": run_id})
        if not state or state[0].names_generation is None:
            return self.live_results(run_id)
        rows = self._uow.fetch(_CACHED_NAMES, {"b_run": run_id})
        return RunResults(run_id, int(state[0].trace_count), [AssessmentSummary(*row) for row in rows])

    def live_results(self, run_id: str) -> RunResults:
        postgres = self._uow.dialect == "postgresql"
        rows = self._uow.fetch(_summary_pg if postgres else _summary_sqlite, {"b_run": run_id})
        percentiles: dict[tuple[str, float], float] = {}
        if not postgres:
            for name, p, low, high, fraction in self._uow.fetch(_percentiles_sqlite, {"b_run": run_id}):
                percentiles[(name, p)] = _interpolate(low, high, fraction)
        traces = self._uow.fetch(_trace_count, {"b_run": run_id})[0][0]
        summaries = []
        for row in rows:
            name, count, numeric, mean, low, high, pass_rate, errors = row[:8]
            p50, p90 = row[8:10] if postgres else (percentiles.get((name, 0.5)), percentiles.get((name, 0.9)))
            summaries.append(
                AssessmentSummary(
                    name, count, numeric, _f(mean), _f(low), _f(high), _f(p50), _f(p90), _f(pass_rate), errors
                )
            )
        return RunResults(run_id, int(traces), summaries)

    # -- CompareRuns ------------------------------------------------------------------------

    def compare(
        self,
        baseline: str,
        candidates: Sequence[str],
        names: Sequence[str],
        page_size: int,
        page_token: str,
    ) -> Comparison:
        """From the cached pairs of the runs: per candidate, one merge of its (name, pair key)
        rows with the baseline's for the summary, and the same merge filtered to changed values
        for the page, both in primary-key order."""
        self._require_runs([baseline, *candidates])
        binding = binding_of("CompareRuns", baseline, *candidates, "|", *sorted(set(names)))
        codec = self._uow.db.page_tokens
        after = codec.decode(page_token, binding) if page_token else None
        conn = self._uow.conn
        summaries: dict[str, list[AssessmentComparison]] = {}
        if after is None:
            per_run = {run_id: self._pair_keys(run_id, names) for run_id in [baseline, *candidates]}
            for candidate in candidates:
                paired = conn.execute(_pair_summary(names), {"b_base": baseline, "b_cand": candidate}).all()
                summaries[candidate] = _summary_items(per_run.get(baseline, {}), per_run.get(candidate, {}), paired)
        changed: list[ChangedPair] = []
        first = 0 if after is None else int(after[0])
        for position in range(first, len(candidates)):
            resume = (str(after[1]), str(after[2])) if after is not None and position == first else None
            changed += self._changed(baseline, candidates[position], names, resume, page_size + 1 - len(changed))
            if len(changed) > page_size:
                changed = changed[:page_size]
                last = changed[-1]
                token = codec.encode([candidates.index(last.candidate_run_id), last.name, last.pair_key], binding)
                return Comparison(summaries, changed, token)
        return Comparison(summaries, changed, "")

    def _changed(
        self, baseline: str, candidate: str, names: Sequence[str], resume: tuple[str, str] | None, wanted: int
    ) -> list[ChangedPair]:
        """Up to ``wanted`` changed pairs of one candidate in (name, pair key) order: the
        baseline's pairs are read in primary-key order in batches, each with its candidate
        value (one index lookup per pair), until enough differ. Bounded batches keep the plan
        an ordered index scan whatever the planner's statistics say (without them it would
        sort all 30,000 pairs of a run to return the first hundred)."""
        found: list[ChangedPair] = []
        stmt = {
            False: _changed_batch(names, False, self._uow.dialect),
            True: _changed_batch(names, True, self._uow.dialect),
        }
        while True:
            params: dict[str, Any] = {"b_base": baseline, "b_cand": candidate, "b_batch": _CHANGE_BATCH}
            if resume is not None:
                params |= {"b_name": resume[0], "b_key": resume[1]}
            rows = self._uow.conn.execute(stmt[resume is not None], params).all()
            for r in rows:
                if r.value is not None and r.value != r.b_value:
                    found.append(
                        ChangedPair(
                            candidate, r.name, r.pair_key, r.b_trace, r.trace_id, float(r.b_value), float(r.value)
                        )
                    )
                    if len(found) == wanted:
                        return found
            if len(rows) < _CHANGE_BATCH:
                return found
            resume = (rows[-1].name, rows[-1].pair_key)

    def _pair_keys(self, run_id: str, names: Sequence[str]) -> dict[str, int]:
        """Name -> the run's pair keys of that name, as counted by the last rebuild."""
        state = self._uow.fetch(_CACHED_STATE, {"b_run": run_id})
        if not state or state[0].pairs_generation is None:
            raise AssertionError(f"the pairs of run {run_id!r} were never cached")  # ensure_current first
        counts: dict[str, int] = json.loads(state[0].pair_keys)
        return {name: n for name, n in counts.items() if not names or name in names}


def _summary_items(base: dict[str, int], mine: dict[str, int], paired: Sequence[Any]) -> list[AssessmentComparison]:
    """Per name of either run: the paired aggregates and the keys on one side only."""
    by_name = {row.name: row for row in paired}
    items = []
    for name in sorted(set(base) | set(mine)):
        row = by_name.get(name)
        n = int(row.paired) if row is not None else 0
        items.append(
            AssessmentComparison(
                name=name,
                paired_count=n,
                baseline_mean=_f(row.b_mean) if row is not None else None,
                candidate_mean=_f(row.c_mean) if row is not None else None,
                mean_difference=_f(row.d_mean) if row is not None else None,
                wins=int(row.wins) if row is not None else 0,
                losses=int(row.losses) if row is not None else 0,
                ties=int(row.ties) if row is not None else 0,
                baseline_only=base.get(name, 0) - n,
                candidate_only=mine.get(name, 0) - n,
            )
        )
    return items


def _f(value: Any) -> float | None:
    return None if value is None else float(value)


def _interpolate(low: Any, high: Any, fraction: Any) -> float:
    """percentile_cont's value between the neighbouring ranks ``low`` and ``high``."""
    if high is None or not fraction:
        return float(low)
    return float(low) + float(fraction) * (float(high) - float(low))


# -- GetRunResults statements ----------------------------------------------------------------


def _values() -> Any:
    """The run's valid feedback with its numeric and pass views."""
    return (
        sa.select(
            A.c.name,
            A.c.trace_id,
            numeric_view(A).label("v"),
            pass_view(A).label("p"),
            sa.case((A.c.error.is_not(None), 1), else_=0).label("e"),
        )
        .where(A.c.run_id == _P("b_run"), *_FEEDBACK)
        .subquery("x")
    )


def _summary(percentiles: bool) -> sa.Select[Any]:
    x = _values()
    columns: list[Any] = [
        x.c.name,
        sa.func.count().label("n"),
        sa.func.count(x.c.v).label("numeric"),
        sa.func.avg(x.c.v).label("mean"),
        sa.func.min(x.c.v).label("low"),
        sa.func.max(x.c.v).label("high"),
        sa.func.avg(x.c.p).label("pass_rate"),
        sa.func.sum(x.c.e).label("errors"),
    ]
    if percentiles:
        columns += [sa.func.percentile_cont(p).within_group(x.c.v).label(f"p{int(p * 100)}") for p in _PERCENTILES]
    return sa.select(*columns).group_by(x.c.name).order_by(x.c.name)


_summary_pg = _summary(percentiles=True)
_summary_sqlite = _summary(percentiles=False)
# count(*) over a GROUP BY (hashed) rather than count(DISTINCT …), which sorts: 50 ms → 15 ms
# for 30,000 assessments on PostgreSQL.
_traces = sa.select(A.c.trace_id).where(A.c.run_id == _P("b_run"), *_FEEDBACK).group_by(A.c.trace_id).subquery("d")
_trace_count = sa.select(sa.func.count().label("n")).select_from(_traces)


def _percentiles_statement() -> sa.Select[Any]:
    x = _values()
    ranked = (
        sa.select(
            x.c.name,
            x.c.v,
            (sa.func.row_number().over(partition_by=x.c.name, order_by=x.c.v) - 1).label("i"),
            sa.func.count().over(partition_by=x.c.name).label("n"),
        )
        .where(x.c.v.is_not(None))
        .subquery("r")
    )
    wanted = sa.union_all(*(sa.select(sa.literal(p, sa.Float).label("p")) for p in _PERCENTILES)).subquery("w")
    position = wanted.c.p * (ranked.c.n - 1)
    floor = sa.cast(position, sa.Integer)  # position >= 0: CAST truncates toward zero = floor
    return (
        sa.select(
            ranked.c.name,
            wanted.c.p,
            sa.func.max(sa.case((ranked.c.i == floor, ranked.c.v))).label("low"),
            sa.func.max(sa.case((ranked.c.i == floor + 1, ranked.c.v))).label("high"),
            sa.func.max(position - floor).label("fraction"),
        )
        .select_from(ranked.join(wanted, sa.true()))
        .where(ranked.c.i.between(floor, floor + 1))
        .group_by(ranked.c.name, wanted.c.p)
    )


_percentiles_sqlite = _percentiles_statement()


# -- the cache's statements ------------------------------------------------------------------

_CACHED_STATE = sa.select(S.c.names_generation, S.c.trace_count, S.c.pairs_generation, S.c.pair_keys).where(
    S.c.run_id == _P("b_run")
)
_CACHED_NAMES = (
    sa.select(
        N.c.name, N.c.count, N.c.numeric_count, N.c.mean, N.c.min, N.c.max, N.c.p50, N.c.p90, N.c.pass_rate, N.c.errors
    )
    .where(N.c.run_id == _P("b_run"))
    .order_by(N.c.name)
)


def keyed_values(run_id: str) -> sa.Select[Any]:
    """The run's value per (name, pair key), what ``run_result_pairs`` holds: the mean of its
    valid, non-error numeric feedback of that name on the traces with that key (usually one
    trace; the smallest trace id is kept). The key is the dataset record the trace was linked
    with, else the trace's request id tag (looked up only when needed); traces with neither
    have no key and are not paired."""
    v = numeric_view(A)
    request_id = (
        sa.select(TT.c.value).where(TT.c.trace_id == A.c.trace_id, TT.c.key == REQUEST_ID_TAG).scalar_subquery()
    )
    pair_key = sa.func.coalesce(L.c.dataset_record_id, request_id)
    keyed = (
        sa.select(
            A.c.name.label("name"),
            pair_key.label("pair_key"),
            sa.func.avg(v).label("value"),
            sa.func.min(A.c.trace_id).label("trace_id"),
        )
        .select_from(A.outerjoin(L, sa.and_(L.c.run_id == A.c.run_id, L.c.trace_id == A.c.trace_id)))
        .where(A.c.run_id == run_id, *_FEEDBACK, A.c.error.is_(None), v.is_not(None))
        .group_by(A.c.name, pair_key)
        .subquery("k")
    )
    return sa.select(sa.literal(run_id).label("run_id"), keyed).where(keyed.c.pair_key.is_not(None))


_B, _C = P.alias("b"), P.alias("c")


def _merged(names: Sequence[str]) -> tuple[Any, list[Any]]:
    """The baseline's pairs joined with one candidate's on (name, pair key)."""
    join = _B.join(_C, sa.and_(_C.c.run_id == _P("b_cand"), _C.c.name == _B.c.name, _C.c.pair_key == _B.c.pair_key))
    where: list[Any] = [_B.c.run_id == _P("b_base")]
    if names:
        where.append(_B.c.name.in_(list(names)))
    return join, where


def _pair_summary(names: Sequence[str]) -> sa.Select[Any]:
    join, where = _merged(names)
    diff = _C.c.value - _B.c.value
    return (
        sa.select(
            _B.c.name,
            sa.func.count().label("paired"),
            sa.func.avg(_B.c.value).label("b_mean"),
            sa.func.avg(_C.c.value).label("c_mean"),
            sa.func.avg(diff).label("d_mean"),
            sa.func.sum(sa.case((diff > 0, 1), else_=0)).label("wins"),
            sa.func.sum(sa.case((diff < 0, 1), else_=0)).label("losses"),
            sa.func.sum(sa.case((diff == 0, 1), else_=0)).label("ties"),
        )
        .select_from(join)
        .where(*where)
        .group_by(_B.c.name)
    )


_CHANGE_BATCH = 500


def _changed_batch(names: Sequence[str], resume: bool, dialect: str) -> sa.Select[Any]:
    """The baseline's next pairs in (name, pair key) order (after (b_name, b_key) when
    resuming), at most ``b_batch``, each with the candidate's value and trace for the same key
    (NULL when the candidate has none). On PostgreSQL the lookup is a lateral subquery, which
    the planner cannot turn into a hash join of both runs; SQLite joins by index lookups
    anyway (and has no LATERAL)."""
    where: list[Any] = [_B.c.run_id == _P("b_base")]
    if names:
        where.append(_B.c.name.in_(list(names)))
    if resume:
        where.append(sa.tuple_(_B.c.name, _B.c.pair_key) > sa.tuple_(_P("b_name"), _P("b_key")))
    base = (
        sa.select(_B.c.name, _B.c.pair_key, _B.c.value, _B.c.trace_id)
        .where(*where)
        .order_by(_B.c.name, _B.c.pair_key)
        .limit(_P("b_batch"))
        .subquery("base")
    )
    same_key = (_C.c.run_id == _P("b_cand"), _C.c.name == base.c.name, _C.c.pair_key == base.c.pair_key)
    match: Any
    if dialect == "postgresql":
        match = sa.select(_C.c.value, _C.c.trace_id).where(*same_key).offset(0).lateral("c")
        source = base.outerjoin(match, sa.true())
    else:
        match = _C
        source = base.outerjoin(_C, sa.and_(*same_key))
    return (
        sa.select(
            base.c.name,
            base.c.pair_key,
            base.c.trace_id.label("b_trace"),
            base.c.value.label("b_value"),
            match.c.trace_id,
            match.c.value,
        )
        .select_from(source)
        .order_by(base.c.name, base.c.pair_key)
    )
