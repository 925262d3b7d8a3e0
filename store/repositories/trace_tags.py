"""Tags of many traces in one write (OTLP Export, SPEC §3.3).

``TraceMutations`` sets the tags of one trace at a time (StartTrace, EndTrace, SetTraceTag). An
OTLP export tags every trace it touches (its resource attributes, its root span's
``mlflow.traceTag.*``), so this path costs a fixed number of statements whatever the number of
traces: one insert of the default tags, one upsert of the others, one query for traces over the
tag limit (among those the transaction did not create: a new trace's tags are counted without
one), and one UPDATE naming the traces tagged ``mlflow.traceName`` (when there are such).

The caller holds the row locks of the traces (``TraceRepository.log_spans`` earlier in the same
transaction), so the tag rows of a trace are never written by two transactions at once.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING

import sqlalchemy as sa

from store.errors import ResourceExhausted
from store.limits import TAGS_PER_ENTITY_MAX
from store.orm.base import table
from store.orm.traces import TraceRow, TraceTagRow
from store.query.bulk import BulkWrite
from store.query.raw import ForIds
from store.repositories.run_result_cache import invalidate_traces
from store.repositories.run_results import REQUEST_ID_TAG
from store.spans import TRACE_NAME_TAG

if TYPE_CHECKING:
    from store.uow import UnitOfWork

TR = table(TraceRow)
TT = table(TraceTagRow)
_UPSERT = BulkWrite(TT, ("trace_id", "key", "value"), ("trace_id", "key"), ("value",))
_INSERT_MISSING = BulkWrite(TT, ("trace_id", "key", "value"), ("trace_id", "key"))
_N = sa.func.count()
_OVER_LIMIT = ForIds.build(
    TT.c.trace_id,
    lambda one_of: (
        sa.select(TT.c.trace_id, _N.label("n"))
        .where(one_of)
        .group_by(TT.c.trace_id)
        .having(_N > TAGS_PER_ENTITY_MAX)
        .order_by(TT.c.trace_id)
        .limit(1)
    ),
)
_NAME = sa.update(TR).where(TR.c.trace_id == sa.bindparam("b_id")).values(name=sa.bindparam("b_name"))


def set_trace_tags(
    uow: UnitOfWork,
    tags: Mapping[str, Mapping[str, str]],
    defaults: Mapping[str, Mapping[str, str]],
    created: Collection[str] = (),
) -> None:
    """Tag existing, locked traces (trace id -> key -> value): ``tags`` replace stored values,
    ``defaults`` are added only where the trace has no such tag yet (and lose to ``tags``).

    A trace left with more than 1,000 tags is RESOURCE_EXHAUSTED (TOO_MANY_TAGS); the caller's
    transaction then rolls back. The traces in ``created`` were created by this transaction and
    had no tags: theirs are counted here, without a query. ``mlflow.traceName`` in ``tags``
    also names the trace, as SetTraceTag does.
    """
    trace_ids = sorted({t for t, kv in tags.items() if kv} | {t for t, kv in defaults.items() if kv})
    if not trace_ids:
        return
    _INSERT_MISSING.run(uow, [(t, k, v) for t in trace_ids for k, v in sorted(defaults.get(t, {}).items())])
    _UPSERT.run(uow, [(t, k, v) for t in trace_ids for k, v in sorted(tags.get(t, {}).items())])
    over = [
        (t, n)
        for t in trace_ids
        if t in created and (n := len(defaults.get(t, {}).keys() | tags.get(t, {}).keys())) > TAGS_PER_ENTITY_MAX
    ]
    stored = [t for t in trace_ids if t not in created]
    over += [(r.trace_id, r.n) for r in uow.fetch_ids(_OVER_LIMIT, stored)] if stored else []
    if over:
        trace_id, n = min(over)
        raise ResourceExhausted(
            "TOO_MANY_TAGS",
            f"trace {trace_id!r} would have {n} tags; at most {TAGS_PER_ENTITY_MAX}",
            {"trace_id": trace_id, "limit": str(TAGS_PER_ENTITY_MAX)},
        )
    invalidate_traces(
        uow, [t for t in trace_ids if REQUEST_ID_TAG in tags.get(t, {}) or REQUEST_ID_TAG in defaults.get(t, {})]
    )
    names = [{"b_id": t, "b_name": tags[t][TRACE_NAME_TAG]} for t in trace_ids if TRACE_NAME_TAG in tags.get(t, {})]
    if names:
        uow.fetch_many(_NAME, names)
