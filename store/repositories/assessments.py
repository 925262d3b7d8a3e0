"""Assessments (SPEC §4): feedback and expectations on traces.

Rows carry typed copies of the value for filters (``value_number`` only for true numbers,
``value_string``, ``value_bool``), so `feedback.<name> > 0.5` is a column comparison.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.domain import Assessment, AssessmentSource
from store.orm.base import table
from store.orm.traces import AssessmentRow

if TYPE_CHECKING:
    from store.uow import UnitOfWork

A = table(AssessmentRow)
_COLUMNS = (
    A.c.assessment_id, A.c.trace_id, A.c.span_id, A.c.name, A.c.kind, A.c.source_type, A.c.source_id, A.c.value,
    A.c.error, A.c.rationale, A.c.metadata, A.c.run_id, A.c.overrides, A.c.valid, A.c.create_time, A.c.update_time,
)  # fmt: skip
_OF_TRACES = (
    sa.select(*_COLUMNS)
    .where(A.c.trace_id.in_(sa.bindparam("b_ids", expanding=True)))
    .order_by(A.c.trace_id, A.c.create_time, A.c.assessment_id)
)


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


class AssessmentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    def of_traces(self, trace_ids: Sequence[str]) -> dict[str, list[Assessment]]:
        """Every assessment (valid and invalid) of the given traces, oldest first."""
        out: dict[str, list[Assessment]] = defaultdict(list)
        if trace_ids:
            for row in self._conn.execute(_OF_TRACES, {"b_ids": list(trace_ids)}):
                out[row.trace_id].append(to_domain(row))
        return out
