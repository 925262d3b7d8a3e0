"""SearchRuns (SPEC §7): filter keys, orders and the run columns every read selects.

Filter keys: ``name`` (alias ``run_name``), ``run_id``, ``status``, ``model_id``,
``dataset_id``, ``dataset_version``, ``start_time``, ``end_time`` (each also as
``attributes.<key>``), ``params.<k>``, ``tags.<k>`` and ``metrics.<k>`` (numeric comparisons on
the latest value; a NaN value never satisfies a comparison; ``IS NULL``: no such metric).

Order keys: ``name``, ``start_time``, ``end_time``, ``run_id`` and ``metrics.<k>``; the
tie-breaker is ``run_id ASC``. Keyset pagination needs sort values that are never NULL
(``store/query/keyset.py``), but a running run has no ``end_time`` and a run may lack a metric
(or hold NaN, stored as NULL). Those sort through never-NULL expressions whose stand-in
depends on the direction, so the missing values come **last in both directions**:
``COALESCE(end_time, INT64_MAX)`` ascending, ``COALESCE(end_time, INT64_MIN)`` descending,
and ``±infinity`` for metrics. (A missing metric ties with a real infinity at the far end;
``run_id`` breaks the tie.) The direction is part of the order a page token is bound to, so a
token always meets the stand-in it was issued with.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement

from store.domain import SearchQuery
from store.orm.base import table
from store.orm.runs import RunLatestMetricRow, RunParamRow, RunRow, RunTagRow
from store.query.filter_sql import INT64_MAX, INT64_MIN, Field, FilterSpec, Kind, MapField
from store.query.filters import Scalar, filter_error
from store.query.keyset import OrderKey, OrderSpec
from store.query.search import run_search
from store.run_domain import RUN_STATUSES

if TYPE_CHECKING:
    from store.uow import UnitOfWork

R = table(RunRow)
RP = table(RunParamRow)
RT = table(RunTagRow)
LM = table(RunLatestMetricRow)

#: The run columns, in the order ``runs.py::_domain`` unpacks them.
RUN_COLUMNS = (
    R.c.run_id, R.c.experiment_id, R.c.name, R.c.status, R.c.start_time, R.c.end_time, R.c.dataset_id,
    R.c.dataset_version, R.c.dataset_digest, R.c.model_id, R.c.lifecycle_stage, R.c.update_time,
)  # fmt: skip
_METRIC_PREFIXES = ("metrics.", "metric.")


def _attr(*names: str) -> tuple[str, ...]:
    return tuple(n for name in names for n in (name, f"attributes.{name}", f"attribute.{name}"))


def _status(value: Scalar) -> Scalar:
    if isinstance(value, str) and value.upper() in RUN_STATUSES:
        return value.upper()
    raise filter_error(f"status must be one of {', '.join(RUN_STATUSES)} (got {str(value)[:40]!r})")


FILTERS = FilterSpec(
    fields=(
        Field(_attr("name", "run_name"), R.c.name),
        Field(_attr("run_id"), R.c.run_id),
        Field(_attr("status"), R.c.status, coerce=_status),
        Field(_attr("model_id"), R.c.model_id, nullable=True),
        Field(_attr("dataset_id"), R.c.dataset_id, nullable=True),
        Field(_attr("dataset_version"), R.c.dataset_version, Kind.INTEGER, nullable=True),
        Field(_attr("start_time"), R.c.start_time, Kind.TIMESTAMP_MS),
        Field(_attr("end_time"), R.c.end_time, Kind.TIMESTAMP_MS, nullable=True),
    ),
    maps=(
        MapField(("params", "param"), RP.c.run_id == R.c.run_id, RP.c.key, RP.c.value),
        MapField(("tags", "tag"), RT.c.run_id == R.c.run_id, RT.c.key, RT.c.value),
        MapField(
            ("metrics", "metric"),
            LM.c.run_id == R.c.run_id,
            LM.c.name,
            LM.c.value,
            kind=Kind.NUMBER,
            value_nullable=True,
        ),
    ),
)

_FIXED_KEYS = (
    OrderKey(_attr("name"), R.c.name),
    OrderKey(_attr("start_time"), R.c.start_time),
    OrderKey(_attr("run_id"), R.c.run_id),
)


def _descending(words: list[str]) -> bool:
    return len(words) == 2 and words[1].upper() == "DESC"


def _metric_name(key: str) -> str | None:
    for prefix in _METRIC_PREFIXES:
        if key.startswith(prefix) and len(key) > len(prefix):
            name = key[len(prefix) :]
            return name[1:-1] if len(name) > 2 and name[0] == name[-1] == "`" else name
    return None


def order_for(items: Sequence[str]) -> tuple[OrderSpec, list[ColumnElement[Any]]]:
    """The order keys of one request, and the sort expressions the SELECT must add.

    ``end_time`` and ``metrics.<k>`` get the direction-dependent never-NULL expressions of the
    module doc; malformed items are left for ``parse_order_by`` to reject.
    """
    keys = list(_FIXED_KEYS)
    extra: list[ColumnElement[Any]] = []
    for item in items:
        words = item.split()
        if not words:
            continue
        key, desc = words[0], _descending(words)
        if key in _attr("end_time"):
            stand_in = sa.literal(INT64_MIN if desc else INT64_MAX, sa.BigInteger)
            column = sa.func.coalesce(R.c.end_time, stand_in).label("o_end_time")
        elif (name := _metric_name(key)) is not None:
            latest = sa.select(LM.c.value).where(LM.c.run_id == R.c.run_id, LM.c.name == name).scalar_subquery()
            stand_in = sa.literal(float("-inf") if desc else float("inf"), sa.Float)
            column = sa.func.coalesce(latest, stand_in).label(f"o_metric_{len(extra)}")
        else:
            continue
        if any(key in k.names for k in keys):
            continue  # a repeated key: parse_order_by reports it
        keys.append(OrderKey(_attr("end_time") if column.name == "o_end_time" else (key,), column))
        extra.append(column)
    if not any(k.names[0] == "end_time" for k in keys):
        keys.append(OrderKey(_attr("end_time"), R.c.end_time))  # only for the "valid keys" message
    spec = OrderSpec(keys=tuple(keys), default=("start_time DESC",), tiebreaker="run_id")
    return spec, extra


def search_rows(uow: UnitOfWork, experiment_ids: Sequence[int], query: SearchQuery, view: str) -> tuple[list[Any], str]:
    """One page of run rows (``RUN_COLUMNS`` first) and the next page token."""
    order, extra = order_for(query.order_by)
    stmt = sa.select(*RUN_COLUMNS, *extra).where(R.c.experiment_id.in_(list(experiment_ids)))
    if view != "all":
        stmt = stmt.where(R.c.lifecycle_stage == view)
    rows, token = run_search(uow, "SearchRuns", stmt, query, FILTERS, order, list(experiment_ids), view)
    return list(rows), token
