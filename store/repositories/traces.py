"""Trace writes (SPEC §3.3, §3.5): StartTrace, LogSpans, EndTrace, tags, deletion.

Every write is an idempotent upsert that is safe to race from several server processes:

* the experiment gets a shared lock (a concurrent delete of it waits; writers don't);
* missing traces are inserted with ``ON CONFLICT DO NOTHING`` (on PostgreSQL the rows created
  come back from the insert, locked by it), then **the other touched trace rows are locked in
  trace-id order** (``FOR NO KEY UPDATE``, which does not block the foreign-key checks of
  concurrent assessment inserts) before any span is written. Two calls on the same
  traces therefore serialize instead of deadlocking (mlflow#24332) and each recomputes the
  trace's aggregates from the spans as committed by the other (no lost update, mlflow#23244);
* spans are upserted in (trace_id, span_id) order in one statement; a re-sent span replaces
  its earlier copy. The spans of the traces the call created cannot conflict with a stored
  one: on PostgreSQL they go in by one binary COPY instead (``insert_rows``);
* each touched trace's time range, state, previews, name, token usage, session and user are
  recomputed from its stored spans (starting from the locked row, whose every aggregate is
  written back), except what the caller set explicitly: StartTrace's request time and final
  state (OK/ERROR; IN_PROGRESS is what spans say until the root ends), EndTrace's state and
  duration, the name tag, previews, metadata. A preview is the caller's unless it equals what
  the root span stored before the call produced.

A trace id that belongs to another experiment is FAILED_PRECONDITION and nothing is written.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.domain import TRACE_ERROR, TRACE_IN_PROGRESS, TRACE_OK, SpanRecord, TokenUsage, TraceStart
from store.errors import FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from store.limits import SPANS_PER_TRACE_MAX, TAGS_PER_ENTITY_MAX
from store.orm.base import table
from store.orm.traces import SpanRow, TraceMetadataRow, TraceRow, TraceTagRow
from store.query.bulk import BulkUpdate, BulkWrite, insert_rows
from store.query.raw import ForIds
from store.repositories.run_result_cache import invalidate_traces
from store.repositories.run_results import REQUEST_ID_TAG
from store.spans import PROMOTED_METADATA, TRACE_NAME_TAG, aggregate_usage, preview

if TYPE_CHECKING:
    from store.uow import UnitOfWork

TR = table(TraceRow)
TT = table(TraceTagRow)
TM = table(TraceMetadataRow)
S = table(SpanRow)
_P = sa.bindparam
_IDS: Any = _P("b_ids", expanding=True)

_NEW_TRACES = BulkWrite(
    TR,
    (
        "trace_id",
        "experiment_id",
        "request_time",
        "state",
        "span_count",
        "request_time_from_caller",
        "duration_from_caller",
        "state_from_caller",
        "create_time",
        "update_time",
    ),
    conflict_keys=("trace_id",),
)
_SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "span_type", "status", "start_time_unix_nano",
    "end_time_unix_nano", "input_tokens", "output_tokens", "total_tokens", "payload", "proto",
)  # fmt: skip
_UPSERT_SPANS = BulkWrite(S, _SPAN_COLUMNS, ("trace_id", "span_id"), _SPAN_COLUMNS[2:])
_UPSERT_TAGS = BulkWrite(TT, ("trace_id", "key", "value"), ("trace_id", "key"), ("value",))
_INSERT_METADATA = BulkWrite(TM, ("trace_id", "key", "value"), ("trace_id", "key"))

_AGGREGATE_FIELDS = (
    "span_count", "request_time", "execution_duration", "state", "name", "request_preview", "response_preview",
    "session_id", "user_id", "input_tokens", "output_tokens", "total_tokens",
)  # fmt: skip
# A scalar subquery with LIMIT, not EXISTS: PostgreSQL may run an EXISTS as one hashed scan of
# every trace_tags row with the key (as a generic plan did, the table then small), which grows
# with the table; a scalar subquery is always one seek of pk_trace_tags per locked trace.
_NAME_TAGGED = (
    sa.select(sa.literal_column("1"))
    .where(TT.c.trace_id == TR.c.trace_id, TT.c.key == sa.literal(TRACE_NAME_TAG))
    .limit(1)
    .scalar_subquery()
    .is_not(None)
    .label("name_tagged")
)
# The row as it is, locked: LogSpans starts from these values and writes all of them back.
_LOCK = ForIds.build(
    TR.c.trace_id,
    lambda one_of: sa.select(
        TR.c.trace_id, TR.c.experiment_id, TR.c.request_time_from_caller, TR.c.duration_from_caller,
        TR.c.state_from_caller, _NAME_TAGGED,
        *(TR.c[f] for f in _AGGREGATE_FIELDS),
    )
    .where(one_of)
    .order_by(TR.c.trace_id)
    .with_for_update(key_share=True),
)  # fmt: skip
_SPAN_STATS = (
    sa.select(
        S.c.trace_id,
        sa.func.count().label("n"),
        sa.func.min(S.c.start_time_unix_nano).label("first_start"),
        sa.func.max(S.c.end_time_unix_nano).label("last_end"),
        sa.func.count(S.c.total_tokens).label("with_usage"),
    )
    .where(S.c.trace_id.in_(_IDS))
    .group_by(S.c.trace_id)
)
_ROOTS = (
    sa.select(S.c.trace_id, S.c.name, S.c.status, S.c.end_time_unix_nano, S.c.payload)
    .where(S.c.trace_id.in_(_IDS), S.c.parent_span_id.is_(None))
    .order_by(S.c.trace_id, S.c.start_time_unix_nano, S.c.span_id)
)
_USAGE_TREE = sa.select(
    S.c.trace_id, S.c.span_id, S.c.parent_span_id, S.c.input_tokens, S.c.output_tokens, S.c.total_tokens
).where(S.c.trace_id.in_(_IDS))
# LogSpans inserts the traces it may create with every aggregate. On PostgreSQL a new trace's
# come from the batch, and the insert returns the traces it created: locked by their insertion
# and complete, they need neither _LOCK nor a recompute. On SQLite, whose executemany returns
# nothing, they are a trace's without spans, and every trace is locked and recomputed.
_CREATE_TRACES = BulkWrite(
    TR,
    (
        "trace_id", "experiment_id", "request_time_from_caller", "duration_from_caller", "state_from_caller",
        *_AGGREGATE_FIELDS, "create_time", "update_time",
    ),
    conflict_keys=("trace_id",),
    returning=(TR.c.trace_id,),
)  # fmt: skip
# Every aggregate is written: the values are the locked row's, recomputed where spans decide.
_UPDATE_TRACES = BulkUpdate(TR, "trace_id", (*_AGGREGATE_FIELDS, "update_time"))


@dataclass(frozen=True, slots=True)
class _BatchStat:
    """``_SPAN_STATS`` of a trace that had no spans before this call: its spans are the batch."""

    n: int
    first_start: int
    last_end: int | None
    with_usage: int


@dataclass(frozen=True, slots=True)
class _BatchRoot:
    """``_ROOTS`` of such a trace."""

    name: str
    status: str
    end_time_unix_nano: int | None
    payload: str


@dataclass(frozen=True, slots=True)
class LoggedSpans:
    """What a LogSpans touched: its traces (sorted ids) and those it created (PostgreSQL; on
    SQLite none are told apart)."""

    trace_ids: list[str]
    created: frozenset[str]


@dataclass
class _Locked:
    """A locked trace row and what LogSpans will write back to it."""

    row: Any
    values: dict[str, Any]


def in_other_experiment(trace_id: str, experiment_id: str) -> FailedPrecondition:
    return FailedPrecondition(
        "TRACE_IN_OTHER_EXPERIMENT",
        f"trace {trace_id!r} belongs to experiment {experiment_id!r}, not to this one",
        {"trace_id": trace_id, "experiment_id": experiment_id},
    )


def trace_not_found(trace_id: str) -> NotFound:
    return NotFound("TRACE_NOT_FOUND", f"trace {trace_id!r} does not exist", {"trace_id": trace_id})


class TraceRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- LogSpans ----------------------------------------------------------------------------

    def log_spans(self, experiment_id: str, spans: Sequence[SpanRecord], now_ms: int) -> LoggedSpans:
        """Store ``spans`` (see the module docstring); the touched trace ids, sorted, and those
        this call created."""
        unique = {(s.trace_id, s.span_id): s for s in spans}  # a span sent twice: the last wins
        ordered = [unique[k] for k in sorted(unique)]
        by_trace: dict[str, list[SpanRecord]] = defaultdict(list)
        for span in ordered:
            by_trace[span.trace_id].append(span)
        trace_ids = sorted(by_trace)
        exp: int | None = None
        created: frozenset[str] = frozenset()
        if experiment_id:
            exp = self._uow.experiments.require_active(experiment_id)
            complete = self._uow.dialect == "postgresql"
            rows = [_new_trace(t, exp, by_trace[t], complete, now_ms) for t in trace_ids]
            created = frozenset(r.trace_id for r in _CREATE_TRACES.run(self._uow, rows))  # none on SQLite
        existing = [t for t in trace_ids if t not in created]
        locked = self._lock(existing, exp) if existing else {}
        # Previews derived from a root span follow it when a root is (re-)sent; the caller's stay.
        # Which is which is told by comparing with the root as stored before this call.
        rerooted = [
            t
            for t in existing
            if locked[t].row.span_count
            and any(not s.parent_span_id for s in by_trace[t])
            and (locked[t].row.request_preview is not None or locked[t].row.response_preview is not None)
        ]
        old_roots = self._roots(rerooted)
        # A trace this call created has no stored span to conflict with (``created`` is empty on
        # SQLite): its spans go in by COPY, the others' by an upsert.
        insert_rows(self._uow, S, _SPAN_COLUMNS, [_span_row(s) for s in ordered if s.trace_id in created])
        _UPSERT_SPANS.run(self._uow, [_span_row(s) for s in ordered if s.trace_id not in created])
        if locked:
            self._recompute(locked, by_trace, old_roots, now_ms)
        return LoggedSpans(trace_ids, created)

    def _lock(self, trace_ids: list[str], experiment: int | None) -> dict[str, _Locked]:
        """Lock the trace rows in id order; they must exist and, given ``experiment``, be its."""
        rows = self._uow.fetch_ids(_LOCK, trace_ids)
        found = {r.trace_id: _Locked(r, {}) for r in rows}
        missing = [t for t in trace_ids if t not in found]
        if missing:
            raise InvalidArgument.field(
                "experiment_id", f"required: trace {missing[0]!r} does not exist yet and would be created"
            )
        for trace_id, item in found.items():
            if experiment is not None and item.row.experiment_id != experiment:
                raise in_other_experiment(trace_id, str(item.row.experiment_id))
        if experiment is None:
            for owner in sorted({str(i.row.experiment_id) for i in found.values()}):
                self._uow.experiments.require_active(owner)
        return found

    def _roots(self, trace_ids: list[str]) -> dict[str, Any]:
        """The root span of each trace (the earliest, should there be several)."""
        roots: dict[str, Any] = {}
        if trace_ids:
            for root in self._conn.execute(_ROOTS, {"b_ids": trace_ids}):
                roots.setdefault(root.trace_id, root)
        return roots

    def _recompute(
        self,
        locked: dict[str, _Locked],
        by_trace: Mapping[str, list[SpanRecord]],
        old_roots: Mapping[str, Any],
        now_ms: int,
    ) -> None:
        ids = sorted(locked)
        # A trace that had no spans before this call (its row, locked, says so) has exactly the
        # batch's: its aggregates come from the batch without reading them back.
        stored = [t for t in ids if locked[t].row.span_count]
        stats: dict[str, Any] = (
            {r.trace_id: r for r in self._conn.execute(_SPAN_STATS, {"b_ids": stored})} if stored else {}
        )
        roots = self._roots(stored)
        usage = self._usage([t for t in stored if stats[t].with_usage])
        for trace_id in ids:
            if not locked[trace_id].row.span_count:
                stats[trace_id], roots[trace_id], usage[trace_id] = _from_batch(by_trace[trace_id])
        updates = []
        for trace_id in ids:
            item, stat = locked[trace_id], stats[trace_id]
            if stat.n > SPANS_PER_TRACE_MAX:
                raise ResourceExhausted(
                    "TOO_MANY_SPANS",
                    f"trace {trace_id!r} would have {stat.n} spans; at most {SPANS_PER_TRACE_MAX} are kept",
                    {"trace_id": trace_id, "limit": str(SPANS_PER_TRACE_MAX)},
                )
            root, old_root = roots.get(trace_id), old_roots.get(trace_id)
            values = _aggregates(item.row, stat, root, old_root, usage.get(trace_id), by_trace[trace_id])
            updates.append((trace_id, *(values[f] for f in _AGGREGATE_FIELDS), now_ms))
        _UPDATE_TRACES.run(self._uow, updates)

    def _usage(self, trace_ids: list[str]) -> dict[str, TokenUsage | None]:
        if not trace_ids:
            return {}
        tree: dict[str, list[tuple[str, str, TokenUsage | None]]] = defaultdict(list)
        for r in self._conn.execute(_USAGE_TREE, {"b_ids": trace_ids}):
            used = (
                TokenUsage(r.input_tokens or 0, r.output_tokens or 0, r.total_tokens)
                if r.total_tokens is not None
                else None
            )
            tree[r.trace_id].append((r.span_id, r.parent_span_id or "", used))
        return {t: aggregate_usage(spans) for t, spans in tree.items()}


@dataclass(frozen=True, slots=True)
class _NewTrace:
    """A trace row as LogSpans creates it, before its spans decide its aggregates (what
    ``_aggregates`` reads of a locked row)."""

    request_time: int
    span_count: int = 0
    execution_duration: int | None = None
    state: str = TRACE_IN_PROGRESS
    name: str | None = None
    request_preview: str | None = None
    response_preview: str | None = None
    session_id: str | None = None
    user_id: str | None = None
    input_tokens: int | None = None
    output_tokens: int | None = None
    total_tokens: int | None = None
    request_time_from_caller: bool = False
    duration_from_caller: bool = False
    state_from_caller: bool = False
    name_tagged: bool = False


def _new_trace(trace_id: str, experiment: int, batch: list[SpanRecord], complete: bool, now_ms: int) -> tuple[Any, ...]:
    """The ``_CREATE_TRACES`` row of a trace LogSpans may create: with the aggregates of
    ``batch`` as its only spans when ``complete``, else those of a trace without spans."""
    row = _NewTrace(min(s.start_time_unix_nano for s in batch) // 1_000_000)
    if complete:
        stat, root, usage = _from_batch(batch)
        values = _aggregates(row, stat, root, None, usage, batch)
    else:
        values = {f: getattr(row, f) for f in _AGGREGATE_FIELDS}
    return (trace_id, experiment, False, False, False, *(values[f] for f in _AGGREGATE_FIELDS), now_ms, now_ms)


def _from_batch(batch: list[SpanRecord]) -> tuple[_BatchStat, _BatchRoot | None, TokenUsage | None]:
    """Stats, root and usage of a trace whose only spans are ``batch`` (unique span ids)."""
    ends = [s.end_time_unix_nano for s in batch if s.end_time_unix_nano]
    with_usage = sum(1 for s in batch if s.usage is not None)
    stat = _BatchStat(len(batch), min(s.start_time_unix_nano for s in batch), max(ends, default=None), with_usage)
    first = min(
        (s for s in batch if not s.parent_span_id), key=lambda s: (s.start_time_unix_nano, s.span_id), default=None
    )
    root = (
        _BatchRoot(first.name, first.status, first.end_time_unix_nano or None, first.payload_json)
        if first is not None
        else None
    )
    usage = aggregate_usage((s.span_id, s.parent_span_id, s.usage) for s in batch) if with_usage else None
    return stat, root, usage


def _span_row(span: SpanRecord) -> tuple[Any, ...]:
    usage = span.usage
    return (
        span.trace_id,
        span.span_id,
        span.parent_span_id or None,
        span.name,
        span.span_type,
        span.status,
        span.start_time_unix_nano,
        span.end_time_unix_nano or None,
        usage.input_tokens if usage else None,
        usage.output_tokens if usage else None,
        usage.total_tokens if usage else None,
        span.payload_json,
        span.proto,
    )


def _payload(span: Any) -> dict[str, Any]:
    return span.payload if isinstance(span.payload, dict) else dict(json.loads(span.payload))


def _aggregates(
    row: Any, stat: Any, root: Any, old_root: Any, usage: TokenUsage | None, batch: list[SpanRecord]
) -> dict[str, Any]:
    """The trace fields after this LogSpans: the locked row's, recomputed where spans decide.

    ``root`` is the trace's root span now, ``old_root`` the one stored before this call (only
    looked up when the call sends a root span to a trace with previews).
    """
    out: dict[str, Any] = {f: getattr(row, f) for f in _AGGREGATE_FIELDS}
    out["span_count"] = stat.n
    root_ended = root is not None and root.end_time_unix_nano is not None
    if not row.request_time_from_caller:
        out["request_time"] = stat.first_start // 1_000_000
    if not row.duration_from_caller and root_ended and stat.last_end is not None:
        out["execution_duration"] = max(0, (stat.last_end - stat.first_start) // 1_000_000)
    if not row.state_from_caller:
        out["state"] = (TRACE_ERROR if root.status == TRACE_ERROR else TRACE_OK) if root_ended else TRACE_IN_PROGRESS
    if root is not None:
        payload = _payload(root)
        if not row.name_tagged:
            out["name"] = root.name
        old = _payload(old_root) if old_root is not None else {}
        for field, key in (("request_preview", "inputs"), ("response_preview", "outputs")):
            stored = getattr(row, field)
            if stored is None or (old_root is not None and stored == preview(old.get(key))):
                out[field] = preview(payload.get(key))  # not the caller's: follows the root
    out["session_id"] = row.session_id or next((s.session_id for s in batch if s.session_id), None)
    out["user_id"] = row.user_id or next((s.user_id for s in batch if s.user_id), None)
    out["input_tokens"], out["output_tokens"], out["total_tokens"] = (
        (usage.input_tokens, usage.output_tokens, usage.total_tokens) if usage is not None else (None, None, None)
    )
    return out


_META_KEYS = sa.select(TM.c.key).where(TM.c.trace_id == _P("b_id"))
_COUNT_TAGS = sa.select(sa.func.count()).where(TT.c.trace_id == _P("b_id"))
_DELETE_TAG = sa.delete(TT).where(TT.c.trace_id == _P("b_id"), TT.c.key == _P("b_key"))
_LAST_END = sa.select(sa.func.max(S.c.end_time_unix_nano)).where(S.c.trace_id == _P("b_id"))
_ROOT_NAME = (
    sa.select(S.c.name)
    .where(S.c.trace_id == _P("b_id"), S.c.parent_span_id.is_(None))
    .order_by(S.c.start_time_unix_nano, S.c.span_id)
    .limit(1)
)
_REQUEST_TIME = sa.select(TR.c.request_time).where(TR.c.trace_id == _P("b_id"))


class TraceMutations:
    """StartTrace, EndTrace, tags and deletion (LogSpans is ``TraceRepository.log_spans``)."""

    def __init__(self, uow: UnitOfWork, spans: TraceRepository) -> None:
        self._uow = uow
        self._conn = uow.conn
        self._spans = spans

    def start(self, start: TraceStart, now_ms: int) -> None:
        exp = self._uow.experiments.require_active(start.experiment_id)
        request_time = start.request_time_ms if start.request_time_ms is not None else now_ms
        # IN_PROGRESS is what a trace is until its root span ends: only a final state is kept
        # over the spans' (a late retry of the first StartTrace must not undo an EndTrace).
        final_state = start.state if start.state in (TRACE_OK, TRACE_ERROR) else None
        row = (
            start.trace_id, exp, request_time, final_state or TRACE_IN_PROGRESS, 0,
            start.request_time_ms is not None, start.execution_duration_ms is not None, final_state is not None,
        )  # fmt: skip
        _NEW_TRACES.run(self._uow, [(*row, now_ms, now_ms)])
        self._spans._lock([start.trace_id], exp)
        changes: dict[str, Any] = {"update_time": now_ms}
        if start.client_request_id is not None:
            changes["client_request_id"] = start.client_request_id
        if start.request_time_ms is not None:
            changes |= {"request_time": start.request_time_ms, "request_time_from_caller": True}
        if start.execution_duration_ms is not None:
            changes |= {"execution_duration": start.execution_duration_ms, "duration_from_caller": True}
        if final_state is not None:
            changes |= {"state": final_state, "state_from_caller": True}
        if start.request_preview is not None:
            changes["request_preview"] = start.request_preview
        if start.response_preview is not None:
            changes["response_preview"] = start.response_preview
        changes |= self._add_metadata(start.trace_id, start.metadata)
        changes |= self._set_tags(start.trace_id, start.tags)
        self._conn.execute(sa.update(TR).where(TR.c.trace_id == start.trace_id).values(changes))

    def end(
        self, trace_id: str, state: str, end_time_ms: int | None, response_preview: str | None,
        tags: Mapping[str, str], now_ms: int,
    ) -> None:  # fmt: skip
        self._lock_writable(trace_id)
        if end_time_ms is None:
            last_end = self._conn.execute(_LAST_END, {"b_id": trace_id}).scalar()
            end_time_ms = last_end // 1_000_000 if last_end is not None else now_ms
        started = self._conn.execute(_REQUEST_TIME, {"b_id": trace_id}).scalar_one()
        changes: dict[str, Any] = {
            "state": state,
            "state_from_caller": True,
            "execution_duration": max(0, end_time_ms - started),
            "duration_from_caller": True,
            "update_time": now_ms,
        }
        if response_preview is not None:
            changes["response_preview"] = response_preview
        changes |= self._set_tags(trace_id, tags)
        self._conn.execute(sa.update(TR).where(TR.c.trace_id == trace_id).values(changes))

    def set_tag(self, trace_id: str, key: str, value: str, now_ms: int) -> None:
        self._lock_writable(trace_id)
        changes = self._set_tags(trace_id, {key: value}) | {"update_time": now_ms}
        self._conn.execute(sa.update(TR).where(TR.c.trace_id == trace_id).values(changes))

    def delete_tag(self, trace_id: str, key: str, now_ms: int) -> None:
        self._lock_writable(trace_id)
        self._conn.execute(_DELETE_TAG, {"b_id": trace_id, "b_key": key})
        if key == REQUEST_ID_TAG:
            invalidate_traces(self._uow, [trace_id])
        changes: dict[str, Any] = {"update_time": now_ms}
        if key == TRACE_NAME_TAG:
            changes["name"] = self._conn.execute(_ROOT_NAME, {"b_id": trace_id}).scalar()
        self._conn.execute(sa.update(TR).where(TR.c.trace_id == trace_id).values(changes))

    def delete(
        self, experiment_id: str, trace_ids: Sequence[str], max_request_time_ms: int | None, max_traces: int
    ) -> int:
        """Hard delete; returns the count. Under the trace rows' locks, which every span write
        holds until commit, the spans (they have no foreign key: ``SpanRow``), then the rows;
        tags, metadata and assessments cascade."""
        exp = self._uow.experiments.get(experiment_id)  # NOT_FOUND for an unknown experiment
        key = int(exp.experiment_id)
        if max_request_time_ms is not None:
            oldest = (
                sa.select(TR.c.trace_id)
                .where(TR.c.experiment_id == key, TR.c.request_time < max_request_time_ms)
                .order_by(TR.c.request_time, TR.c.trace_id)
                .limit(max_traces)
            )
            trace_ids = list(self._conn.execute(oldest).scalars())
        if not trace_ids:
            return 0
        # Lock in trace-id order first, like every other trace writer: a DELETE alone locks rows
        # in scan order and could deadlock with a LogSpans holding some of them.
        lock = (
            sa.select(TR.c.trace_id)
            .where(TR.c.experiment_id == key, TR.c.trace_id.in_(sorted(set(trace_ids))))
            .order_by(TR.c.trace_id)
            .with_for_update()
        )
        doomed = list(self._conn.execute(lock).scalars())
        if not doomed:
            return 0
        invalidate_traces(self._uow, doomed)
        self._conn.execute(sa.delete(S).where(S.c.trace_id.in_(doomed)))
        stmt = sa.delete(TR).where(TR.c.trace_id.in_(doomed))
        return int(self._conn.execute(stmt).rowcount)

    # -- helpers -----------------------------------------------------------------------------

    def _lock_writable(self, trace_id: str) -> None:
        rows = self._uow.fetch_ids(_LOCK, [trace_id])
        if not rows:
            raise trace_not_found(trace_id)
        self._uow.experiments.require_active(str(rows[0].experiment_id))

    def _add_metadata(self, trace_id: str, metadata: Mapping[str, str]) -> dict[str, Any]:
        """Insert the keys not set yet (set keys never change); promoted fields of new keys."""
        if not metadata:
            return {}
        present = set(self._conn.execute(_META_KEYS, {"b_id": trace_id}).scalars())
        new = {k: v for k, v in sorted(metadata.items()) if k not in present}
        _INSERT_METADATA.run(self._uow, [(trace_id, k, v) for k, v in new.items()])
        return {field: new[key] for key, field in PROMOTED_METADATA.items() if key in new}

    def _set_tags(self, trace_id: str, tags: Mapping[str, str]) -> dict[str, Any]:
        if not tags:
            return {}
        _UPSERT_TAGS.run(self._uow, [(trace_id, k, v) for k, v in sorted(tags.items())])
        if REQUEST_ID_TAG in tags:
            invalidate_traces(self._uow, [trace_id])
        count = self._conn.execute(_COUNT_TAGS, {"b_id": trace_id}).scalar_one()
        if count > TAGS_PER_ENTITY_MAX:
            raise ResourceExhausted(
                "TOO_MANY_TAGS",
                f"trace {trace_id!r} would have {count} tags; at most {TAGS_PER_ENTITY_MAX}",
                {"trace_id": trace_id, "limit": str(TAGS_PER_ENTITY_MAX)},
            )
        return {"name": tags[TRACE_NAME_TAG]} if TRACE_NAME_TAG in tags else {}
