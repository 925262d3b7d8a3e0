"""Assessments (SPEC §4): feedback and expectations on traces.

Rows carry typed copies of the value for filters (``value_number`` only for true numbers,
``value_string``, ``value_bool``), so `feedback.<name> > 0.5` is a column comparison.

Override chains. An assessment may override (supersede) one of the same trace, which then
becomes invalid; of a chain exactly one assessment is valid, the newest. The rules that keep
it so, on both backends and under concurrency:

* creating an override locks the overridden row (``FOR UPDATE`` on PostgreSQL; SQLite's write
  transaction holds the database) and refuses it when it is already invalid
  (INVALID_OVERRIDE): of two concurrent overrides of one assessment, the second waits for the
  first, then sees it invalid and fails — one override per assessment, never two valid heads;
* deleting the valid head of a chain makes the one it overrode valid again;
* deleting an assessment inside a chain links its overrider to what it overrode, so the chain
  stays whole (``overrides`` is immutable for callers; the server keeps it pointing at a row
  that exists).

Writes lock in one order — trace rows (``FOR KEY SHARE``, so a concurrent DeleteTraces waits),
the experiment (shared, ``require_active``), then assessment rows — and a batch inserts every
row in one statement (``BulkWrite``).
"""

from __future__ import annotations

import dataclasses
import uuid
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from store.domain import DELETED, Assessment, AssessmentSource, Page, SearchQuery
from store.engine import json_text
from store.errors import InvalidArgument, NotFound
from store.limits import TAGS_PER_ENTITY_MAX
from store.orm.base import table
from store.orm.experiments import ExperimentRow
from store.orm.traces import AssessmentRow, TraceRow
from store.query.bulk import BulkWrite
from store.query.filter_sql import Coerce, Field, FilterSpec, Kind
from store.query.filters import Scalar, filter_error
from store.query.keyset import OrderKey, OrderSpec
from store.query.raw import ForIds, json_value
from store.query.search import run_search
from store.repositories.experiments import experiment_deleted, parse_experiment_id
from store.repositories.run_result_cache import invalidate_runs
from store.repositories.traces import trace_not_found

if TYPE_CHECKING:
    from store.uow import UnitOfWork

FEEDBACK = "feedback"
EXPECTATION = "expectation"
SOURCE_TYPES = ("HUMAN", "LLM_JUDGE", "CODE")

A = table(AssessmentRow)
TR = table(TraceRow)
_P = sa.bindparam
_COLUMNS = (
    A.c.assessment_id, A.c.trace_id, A.c.span_id, A.c.name, A.c.kind, A.c.source_type, A.c.source_id, A.c.value,
    A.c.error, A.c.rationale, A.c.metadata, A.c.run_id, A.c.overrides, A.c.valid, A.c.create_time, A.c.update_time,
)  # fmt: skip
# Of many traces (a page of search results): one prebuilt statement per backend, the ids as one
# parameter (an array on PostgreSQL, JSON text on SQLite) instead of an IN list compiled per call.
_ORDER_OF_TRACES = (A.c.trace_id, A.c.create_time, A.c.assessment_id)
# PostgreSQL: one seek of (trace_id, create_time) per trace, whatever the statistics say. With
# ``trace_id = ANY(ids)`` a table not analyzed since it grew (autovacuum behind or off) made the
# planner read every assessment and filter (measured in the mixed load: ~10 ms per SearchTraces,
# growing with the table). The ordered LATERAL subquery is planned on its own, per trace id.
_TRACE_IDS = sa.func.unnest(sa.cast(_P("b_ids"), postgresql.ARRAY(sa.Text))).table_valued("id").render_derived("ids")
_PER_TRACE = (
    sa.select(*_COLUMNS)
    .where(A.c.trace_id == _TRACE_IDS.c.id)
    .order_by(A.c.create_time, A.c.assessment_id)
    .lateral("a")
)
# SQLite keeps the plain form: ``trace_id IN (SELECT value FROM json_each(ids))``.
_OF_TRACES = dataclasses.replace(
    ForIds.build(A.c.trace_id, lambda one_of: sa.select(*_COLUMNS).where(one_of).order_by(*_ORDER_OF_TRACES)),
    postgresql=(
        sa.select(*_PER_TRACE.c)
        .select_from(_TRACE_IDS.join(_PER_TRACE, sa.true()))
        .order_by(*(_PER_TRACE.c[c.name] for c in _ORDER_OF_TRACES))
    ),
)
# value, error, metadata in _COLUMNS. SQLite returns JSON as its text, except numbers: a column
# declared JSON has NUMERIC affinity, so "0.7" is stored (and returned) as the number 0.7.
_JSON_POSITIONS = (7, 8, 10)
_GET = sa.select(*_COLUMNS).where(A.c.assessment_id == _P("b_id"))
_LOCK = _GET.with_for_update()
_EXPERIMENT_OF = (
    sa.select(TR.c.experiment_id).join_from(A, TR, A.c.trace_id == TR.c.trace_id).where(A.c.assessment_id == _P("b_id"))
)
# The traces written to, with their experiments' stages, in one statement. PostgreSQL locks
# each trace FOR KEY SHARE (it cannot be deleted under us; other writers of it are not blocked)
# and its experiment FOR SHARE (as ``ExperimentRepository.require_active``: a concurrent delete
# of the experiment waits for this transaction). SQLite's write transaction holds the database.
E = table(ExperimentRow)
_LOCK_TRACES = ForIds.build(
    TR.c.trace_id,
    lambda one_of: (
        sa.select(TR.c.trace_id, TR.c.experiment_id, E.c.lifecycle_stage)
        .join_from(TR, E, E.c.experiment_id == TR.c.experiment_id)
        .where(one_of)
        .order_by(TR.c.trace_id)
    ),
    pg_suffix=f"FOR KEY SHARE OF {TR.name} FOR SHARE OF {E.name}",
)
_LOCK_TARGETS = (
    sa.select(A.c.assessment_id, A.c.trace_id, A.c.valid, A.c.run_id)
    .where(A.c.assessment_id.in_(_P("b_ids", expanding=True)))
    .order_by(A.c.assessment_id)
    .with_for_update()
)
_INVALIDATE = (
    sa.update(A).where(A.c.assessment_id.in_(_P("b_ids", expanding=True))).values(valid=False, update_time=_P("b_now"))
)
_RESTORE = sa.update(A).where(A.c.assessment_id == _P("b_id")).values(valid=True, update_time=_P("b_now"))
_RELINK = sa.update(A).where(A.c.overrides == _P("b_id")).values(overrides=_P("b_to"), update_time=_P("b_now"))
_DELETE = sa.delete(A).where(A.c.assessment_id == _P("b_id"))
_RUN_OF = sa.select(A.c.run_id).where(A.c.assessment_id == _P("b_id"))
_INSERT_COLUMNS = (
    "assessment_id", "trace_id", "span_id", "name", "kind", "source_type", "source_id", "value", "error",
    "value_number", "value_string", "value_bool", "rationale", "metadata", "run_id", "overrides", "valid",
    "create_time", "update_time",
)  # fmt: skip
_INSERT = BulkWrite(A, _INSERT_COLUMNS)


def _pg_create_one() -> Any:
    """PostgreSQL: ``_LOCK_TRACES`` of one trace and the INSERT of one assessment on it, in one
    statement (one round trip fewer). The trace is locked FOR KEY SHARE and its experiment FOR
    SHARE, as by ``_LOCK_TRACES``; the row goes in only if the experiment is not deleted. Returns
    the experiment's id and stage (no row: no such trace) and whether the row went in."""
    trace = (
        sa.select(TR.c.experiment_id)
        .where(TR.c.trace_id == _P("b_trace_id"))
        .with_for_update(read=True, key_share=True)
        .cte("locked_trace")
    )
    experiment = (
        sa.select(E.c.experiment_id, E.c.lifecycle_stage)
        .where(E.c.experiment_id == sa.select(trace.c.experiment_id).scalar_subquery())
        .with_for_update(read=True)
        .cte("locked_experiment")
    )
    values = [
        sa.cast(_P(f"b_{c}"), postgresql.JSONB() if isinstance(A.c[c].type, sa.JSON) else A.c[c].type)
        for c in _INSERT_COLUMNS
    ]  # (typed: in INSERT … SELECT, PostgreSQL does not take them from the columns)
    row = sa.select(*values).select_from(experiment).where(experiment.c.lifecycle_stage != DELETED)
    inserted = sa.insert(A).from_select(list(_INSERT_COLUMNS), row).returning(A.c.assessment_id).cte("inserted")
    count = sa.select(sa.func.count()).select_from(inserted).scalar_subquery()
    return sa.select(experiment.c.experiment_id, experiment.c.lifecycle_stage, count.label("inserted"))


_PG_CREATE_ONE = _pg_create_one()


@dataclass(frozen=True, slots=True)
class NewAssessment:
    """What CreateAssessment stores (validated by the server)."""

    trace_id: str
    name: str
    kind: str  # feedback / expectation
    source: AssessmentSource
    value: object  # any JSON value; None with an error
    error: Mapping[str, str] | None = None  # feedback only: error_code, error_message, stack_trace
    span_id: str = ""
    rationale: str = ""
    metadata: Mapping[str, str] = field(default_factory=dict)
    run_id: str = ""
    overrides: str = ""


@dataclass(frozen=True, slots=True)
class AssessmentChanges:
    """What UpdateAssessment changes; ``None`` keeps the stored value.

    ``kind`` is set together with a new ``value``/``error`` (the kind that value is for);
    ``metadata`` is merged by key; ``immutable`` maps request paths (``source.source_id``) to
    values the caller sent for immutable fields, which must equal the stored ones.
    """

    name: str | None = None
    kind: str | None = None
    value: object = None
    error: Mapping[str, str] | None = None
    rationale: str | None = None
    metadata: Mapping[str, str] | None = None
    immutable: Mapping[str, str] = field(default_factory=dict)


def new_assessment_id() -> str:
    return "a-" + uuid.uuid4().hex


def to_domain(row: Any) -> Assessment:
    """A row of ``_COLUMNS`` as a domain object."""
    (aid, trace_id, span_id, name, kind, source_type, source_id, value, error, rationale, metadata, run_id,
     overrides, valid, created, updated) = row  # fmt: skip
    return Assessment(
        assessment_id=aid,
        trace_id=trace_id,
        span_id=span_id or "",
        name=name,
        kind=kind,
        source=AssessmentSource(source_type, source_id or ""),
        value=value,
        error=error,
        rationale=rationale or "",
        metadata=dict(metadata or {}),
        run_id=run_id or "",
        overrides=overrides or "",
        valid=bool(valid),
        create_time_ms=created,
        update_time_ms=updated,
    )


def _parsed(row: Any) -> list[Any]:
    out = list(row)
    for i in _JSON_POSITIONS:
        out[i] = json_value(out[i])
    return out


def typed_copies(value: object) -> tuple[float | None, str | None, bool | None]:
    """(value_number, value_string, value_bool): a true number, a string, a boolean."""
    if isinstance(value, bool):
        return None, None, value
    if isinstance(value, (int, float)):
        return float(value), None, None
    if isinstance(value, str):
        return None, value, None
    return None, None, None


def _json(value: object) -> str:
    return json_text(value)  # values and errors are checked finite (server/convert/assessments.py)


def assessment_not_found(assessment_id: str) -> NotFound:
    return NotFound(
        "ASSESSMENT_NOT_FOUND", f"assessment {assessment_id!r} does not exist", {"assessment_id": assessment_id}
    )


def _invalid_override(path: str, message: str) -> InvalidArgument:
    return InvalidArgument.field(f"{path}.overrides", message, reason="INVALID_OVERRIDE")


class AssessmentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- reads -------------------------------------------------------------------------------

    def of_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Assessment]]:
        """Every assessment (valid and invalid) of the given traces, oldest first."""
        out: dict[str, list[Assessment]] = defaultdict(list)
        if not trace_ids:
            return out
        rows = self._uow.fetch_ids(_OF_TRACES, trace_ids)
        if self._uow.dialect != "postgresql":
            rows = [_parsed(r) for r in rows]
        for row in rows:
            out[row[1]].append(to_domain(row))
        return out

    def get(self, assessment_id: str) -> Assessment:
        row = self._conn.execute(_GET, {"b_id": assessment_id}).first()
        if row is None:
            raise assessment_not_found(assessment_id)
        return to_domain(row)

    def page(self, scope: str, scope_id: str, query: SearchQuery) -> Page[Assessment]:
        """A page of the assessments of a trace, run or experiment (``scope``), oldest first."""
        stmt = sa.select(*_COLUMNS)
        if scope == "trace_id":
            stmt = stmt.where(A.c.trace_id == scope_id)
        elif scope == "run_id":
            stmt = stmt.where(A.c.run_id == scope_id)
        else:
            experiment = parse_experiment_id(scope_id, scope)
            stmt = stmt.join_from(A, TR, A.c.trace_id == TR.c.trace_id).where(TR.c.experiment_id == experiment)
        rows, token = run_search(self._uow, "ListAssessments", stmt, query, FILTERS, ORDER, scope, scope_id)
        return Page([to_domain(r) for r in rows], token)

    # -- writes ------------------------------------------------------------------------------

    def create(self, items: Sequence[NewAssessment], now_ms: int, paths: Sequence[str]) -> list[Assessment]:
        """Store ``items`` (``paths[i]`` names item i in errors) in request order; all or nothing."""
        if len(items) == 1 and not items[0].overrides and self._uow.dialect == "postgresql":
            return [self._create_one(items[0], now_ms)]
        self._require_writable_traces(items)
        overridden, their_runs = self._lock_overridden(items, paths)
        created = [self._new(item, now_ms) for item in items]
        _INSERT.run(self._uow, [_insert_row(a, item) for a, item in zip(created, items, strict=True)])
        if overridden:
            self._conn.execute(_INVALIDATE, {"b_ids": overridden, "b_now": now_ms})
        invalidate_runs(self._uow, [*(item.run_id for item in items), *their_runs])
        return created

    def update(self, assessment_id: str, changes: AssessmentChanges, now_ms: int) -> Assessment:
        current = self._lock_writable(assessment_id)
        if current is None:
            raise assessment_not_found(assessment_id)
        _check_immutable(current, changes.immutable)
        values: dict[str, Any] = {"update_time": now_ms}
        if changes.name is not None:
            values["name"] = changes.name
        if changes.rationale is not None:
            values["rationale"] = changes.rationale or None
        if changes.metadata is not None:
            values["metadata"] = _merged(current.metadata, changes.metadata)
        if changes.kind is not None:
            if changes.kind != current.kind:
                message = f"the assessment is {current.kind}, not {changes.kind}; the kind cannot change"
                raise InvalidArgument.field(f"assessment.{changes.kind}", message)
            number, string, boolean = typed_copies(changes.value)
            values |= {
                "value": sa.null() if changes.value is None else changes.value,
                "error": sa.null() if changes.error is None else dict(changes.error),
                "value_number": number,
                "value_string": string,
                "value_bool": boolean,
            }
        if len(values) > 1:  # something besides update_time
            self._conn.execute(sa.update(A).where(A.c.assessment_id == assessment_id).values(values))
            invalidate_runs(self._uow, [current.run_id])
        return self.get(assessment_id)

    def delete(self, assessment_id: str, now_ms: int) -> None:
        """Delete (idempotent); see the module docstring for what happens to its chain."""
        current = self._lock_writable(assessment_id)
        if current is None:
            return
        params = {"b_id": assessment_id, "b_to": current.overrides or None, "b_now": now_ms}
        self._conn.execute(_RELINK, params)
        self._conn.execute(_DELETE, {"b_id": assessment_id})
        if current.valid and current.overrides:
            self._conn.execute(_RESTORE, {"b_id": current.overrides, "b_now": now_ms})
            restored = self._conn.execute(_RUN_OF, {"b_id": current.overrides}).scalar()
            invalidate_runs(self._uow, [current.run_id, restored])
        else:
            invalidate_runs(self._uow, [current.run_id])

    # -- helpers -----------------------------------------------------------------------------

    def _create_one(self, item: NewAssessment, now_ms: int) -> Assessment:
        """``create`` of one assessment that overrides nothing, on PostgreSQL (``_PG_CREATE_ONE``)."""
        created = self._new(item, now_ms)
        params = dict(zip(_INSERT.names, _insert_row(created, item), strict=True))
        rows = self._uow.fetch(_PG_CREATE_ONE, params)
        if not rows:
            raise trace_not_found(item.trace_id)
        if rows[0].lifecycle_stage == DELETED:
            raise experiment_deleted(str(rows[0].experiment_id))
        assert rows[0].inserted == 1
        invalidate_runs(self._uow, [item.run_id])
        return created

    def _require_writable_traces(self, items: Sequence[NewAssessment]) -> None:
        """Every trace exists (locked against deletion) and lives in an active experiment."""
        trace_ids = sorted({i.trace_id for i in items})
        found = {r.trace_id: r for r in self._uow.fetch_ids(_LOCK_TRACES, trace_ids)}
        for item in items:
            if item.trace_id not in found:
                raise trace_not_found(item.trace_id)
        for row in sorted(found.values(), key=lambda r: int(r.experiment_id)):
            if row.lifecycle_stage == DELETED:
                raise experiment_deleted(str(row.experiment_id))

    def _lock_overridden(
        self, items: Sequence[NewAssessment], paths: Sequence[str]
    ) -> tuple[list[str], list[str | None]]:
        """Lock the assessments ``items`` override and check each may be overridden; returns
        their ids and their runs."""
        wanted = sorted({i.overrides for i in items if i.overrides})
        if not wanted:
            return [], []
        targets = {r.assessment_id: r for r in self._conn.execute(_LOCK_TARGETS, {"b_ids": wanted})}
        claimed: set[str] = set()
        for item, path in zip(items, paths, strict=True):
            if not item.overrides:
                continue
            target = targets.get(item.overrides)
            if target is None:
                raise assessment_not_found(item.overrides)
            if target.trace_id != item.trace_id:
                raise _invalid_override(
                    path, f"assessment {item.overrides!r} is on trace {target.trace_id!r}, not {item.trace_id!r}"
                )
            if not target.valid or item.overrides in claimed:
                raise _invalid_override(path, f"assessment {item.overrides!r} is already overridden")
            claimed.add(item.overrides)
        return sorted(claimed), [targets[i].run_id for i in claimed]

    def _lock_writable(self, assessment_id: str) -> Assessment | None:
        """The assessment, locked, after checking its experiment is active; None if it is gone."""
        experiment_id = self._conn.execute(_EXPERIMENT_OF, {"b_id": assessment_id}).scalar()
        if experiment_id is None:
            return None
        self._uow.experiments.require_active(str(experiment_id))
        row = self._conn.execute(_LOCK, {"b_id": assessment_id}).first()
        return None if row is None else to_domain(row)

    @staticmethod
    def _new(item: NewAssessment, now_ms: int) -> Assessment:
        return Assessment(
            assessment_id=new_assessment_id(),
            trace_id=item.trace_id,
            span_id=item.span_id,
            name=item.name,
            kind=item.kind,
            source=item.source,
            value=item.value,
            error=dict(item.error) if item.error is not None else None,
            rationale=item.rationale,
            metadata=dict(item.metadata),
            run_id=item.run_id,
            overrides=item.overrides,
            valid=True,
            create_time_ms=now_ms,
            update_time_ms=now_ms,
        )


def _insert_row(a: Assessment, item: NewAssessment) -> tuple[Any, ...]:
    number, string, boolean = typed_copies(item.value)
    return (
        a.assessment_id, a.trace_id, a.span_id or None, a.name, a.kind, a.source.source_type, a.source.source_id,
        None if a.value is None else _json(a.value), None if a.error is None else _json(a.error),
        number, string, boolean, a.rationale or None, _json(a.metadata), a.run_id or None, a.overrides or None,
        True, a.create_time_ms, a.update_time_ms,
    )  # fmt: skip


def _merged(stored: Mapping[str, str], changes: Mapping[str, str]) -> dict[str, str]:
    merged = {**stored, **changes}
    if len(merged) > TAGS_PER_ENTITY_MAX:
        raise InvalidArgument.field(
            "assessment.metadata", f"at most {TAGS_PER_ENTITY_MAX} keys after merging (would be {len(merged)})"
        )
    return merged


def _check_immutable(current: Assessment, sent: Mapping[str, str]) -> None:
    stored = {
        "trace_id": current.trace_id,
        "span_id": current.span_id,
        "run_id": current.run_id,
        "overrides": current.overrides,
        "source.source_type": current.source.source_type,
        "source.source_id": current.source.source_id,
    }
    for path, value in sent.items():
        if stored[path] != value:
            raise InvalidArgument.field(
                f"assessment.{path}", f"immutable: it is {stored[path][:60]!r}, cannot change to {value[:60]!r}"
            )


# -- ListAssessments -------------------------------------------------------------------------


def _one_of(allowed: tuple[str, ...], key: str, fold: Callable[[str], str]) -> Coerce:
    def check(value: Scalar) -> Scalar:
        if isinstance(value, str) and fold(value) in allowed:
            return fold(value)
        raise filter_error(f"{key} must be one of {', '.join(allowed)} (got {str(value)[:40]!r})")

    return check


FILTERS = FilterSpec(
    fields=(
        Field(("name",), A.c.name),
        Field(
            ("source_type", "source.source_type"),
            A.c.source_type,
            coerce=_one_of(SOURCE_TYPES, "source_type", str.upper),
        ),
        Field(("source_id", "source.source_id"), A.c.source_id),
        Field(("valid",), A.c.valid, Kind.BOOLEAN),
        Field(("kind",), A.c.kind, coerce=_one_of((FEEDBACK, EXPECTATION), "kind", str.lower)),
        Field(("create_time",), A.c.create_time, Kind.TIMESTAMP_MS),
    ),
)

ORDER = OrderSpec(
    keys=(OrderKey(("create_time",), A.c.create_time), OrderKey(("assessment_id",), A.c.assessment_id)),
    default=("create_time ASC",),
    tiebreaker="assessment_id",
)
