"""Reading logged models (SPEC §6): the row shape with params and tags, the latest metrics,
and SearchLoggedModels' filter keys, order keys and keyset pages.

One model comes back as one row: its columns plus its params and tags aggregated to JSON
objects (as experiments do with tags). The latest metrics of a page are fetched in one query
for all of the page's ids, so a page costs two queries whatever its size.

``metrics.<k>`` (filter and order) means the model's latest value of metric ``k`` over all
datasets and runs: the ``logged_model_latest_metrics`` row of that name with the highest
step, then the latest time (then dataset id, run id, to be deterministic).

Ordering by ``metrics.<k>``: the keyset code (``store/query/keyset.py``) requires order
columns that are never NULL, and a model may lack the metric (or hold NaN, stored as NULL).
So one ``metrics.<k>`` item becomes two never-NULL sort terms: ``group`` (0: a number,
±infinity included; 1: NaN; 2: no such metric), always ascending, then ``coalesce(value, 0)``
in the requested direction. Numbers come first in either direction, then NaN, then models
without the metric (as SearchRuns orders runs). (The value term's internal name holds
a NUL, which metric names cannot, so it never collides with a key a caller writes.)
``OrderSpec`` resolves fixed names only, so this module resolves ``order_by`` itself (fixed
keys still through ``parse_order_by``) and runs the page with ``search_page``
(``store/query/search.py``); the page token is bound to the RPC, filter, resolved order, view
and experiment ids.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Select

from store.domain import SearchQuery
from store.errors import FieldViolation, InvalidArgument
from store.model_domain import STATUSES, LoggedModel, ModelMetric
from store.orm.base import table
from store.orm.models import LoggedModelLatestMetricRow, LoggedModelParamRow, LoggedModelRow, LoggedModelTagRow
from store.query.filter_sql import CustomKey, Field, FilterSpec, Kind, MapField, compare, refuse
from store.query.filters import BINARY_OPS, IN_OPS, NULL_OPS, Comparison, Scalar, filter_error
from store.query.keyset import OrderKey, OrderSpec, OrderTerm, parse_order_by
from store.query.raw import json_value
from store.query.search import search_page

if TYPE_CHECKING:
    from store.uow import UnitOfWork

M = table(LoggedModelRow)
P = table(LoggedModelParamRow)
T = table(LoggedModelTagRow)
L = table(LoggedModelLatestMetricRow)
_P = sa.bindparam
RPC = "SearchLoggedModels"

_COLUMNS = (
    M.c.model_id, M.c.experiment_id, M.c.name, M.c.version, M.c.model_type, M.c.source_run_id, M.c.status,
    M.c.status_message, M.c.lifecycle_stage, M.c.create_time, M.c.update_time,
)  # fmt: skip
_METRIC_COLUMNS = (
    L.c.model_id,
    L.c.name,
    L.c.value,
    L.c.step,
    L.c.time,
    L.c.dataset_id,
    L.c.dataset_digest,
    L.c.run_id,
)
METRICS_OF = sa.select(*_METRIC_COLUMNS).where(L.c.model_id == _P("b_id"))


@cache
def with_children(dialect: str) -> Select[Any]:
    """Model columns plus params and tags as JSON objects (NULL when none): one row per model."""
    agg = sa.func.json_object_agg if dialect == "postgresql" else sa.func.json_group_object
    params = sa.select(agg(P.c.key, P.c.value)).where(P.c.model_id == M.c.model_id).scalar_subquery()
    tags = sa.select(agg(T.c.key, T.c.value)).where(T.c.model_id == M.c.model_id).scalar_subquery()
    return sa.select(*_COLUMNS, params.label("params"), tags.label("tags"))


@cache
def get_statement(dialect: str) -> Select[Any]:
    return with_children(dialect).where(M.c.model_id == _P("b_id"))


def metric_of(row: Any) -> ModelMetric:
    """A domain metric from a latest-metric row (NULL value: NaN)."""
    _, name, value, step, time, dataset_id, digest, run_id = row[:8]
    return ModelMetric(name, math.nan if value is None else float(value), step, time, dataset_id, digest, run_id)


def to_domain(row: Any, metrics: Sequence[Any]) -> LoggedModel:
    """A model from a ``with_children`` row and its latest-metric rows."""
    model_id, exp_id, name, version, model_type, run_id, status, message, stage, created, updated = row[:11]
    points = sorted((metric_of(m) for m in metrics), key=lambda p: (p.name, p.dataset_id, p.run_id))
    return LoggedModel(
        model_id, str(exp_id), name, version, model_type or "", run_id or "", status, message or "",
        _json_map(row[11]), _json_map(row[12]), tuple(points), stage, created, updated,
    )  # fmt: skip


def _json_map(value: Any) -> dict[str, str]:
    return {} if value is None else dict(json_value(value))


def load_page(uow: UnitOfWork, rows: Sequence[Any]) -> list[LoggedModel]:
    """Models from ``with_children`` rows, with their latest metrics fetched in one query."""
    if not rows:
        return []
    ids = [r[0] for r in rows]
    metrics: dict[str, list[Any]] = {i: [] for i in ids}
    for m in uow.conn.execute(sa.select(*_METRIC_COLUMNS).where(L.c.model_id.in_(ids))).all():
        metrics[m[0]].append(m)
    return [to_domain(r, metrics[r[0]]) for r in rows]


# -- filter ----------------------------------------------------------------------------------


def _status(value: Scalar) -> Scalar:
    if isinstance(value, str) and value.upper() in STATUSES:
        return value.upper()
    raise filter_error(f"status must be one of {', '.join(STATUSES)} (got {str(value)[:40]!r})")


def latest_value(name: str) -> ColumnElement[Any]:
    """The model's latest value of metric ``name`` over all datasets and runs (NULL: none or NaN)."""
    return (
        sa.select(L.c.value)
        .where(L.c.model_id == M.c.model_id, L.c.name == sa.bindparam(None, name, type_=sa.String()))
        .order_by(L.c.step.desc(), L.c.time.desc(), L.c.dataset_id, L.c.run_id)
        .limit(1)
        .scalar_subquery()
    )


def _has_metric(name: str) -> ColumnElement[bool]:
    return sa.exists().where(L.c.model_id == M.c.model_id, L.c.name == sa.bindparam(None, name, type_=sa.String()))


def _metric_filter(name: str, cmp: Comparison) -> ColumnElement[bool]:
    if not name:
        raise refuse(cmp, "use metrics.<name>")
    if cmp.op in NULL_OPS:  # IS NULL: the model has no such metric
        return sa.not_(_has_metric(name)) if cmp.op == "IS NULL" else _has_metric(name)
    return compare(latest_value(name), cmp, kind=Kind.NUMBER, nullable=True, ops=BINARY_OPS | IN_OPS)


FILTERS = FilterSpec(
    fields=(
        Field(("name",), M.c.name),
        Field(("model_id",), M.c.model_id),
        Field(("model_type",), M.c.model_type, nullable=True),
        Field(("status",), M.c.status, ops=frozenset({"=", "!="}) | IN_OPS, coerce=_status),
        Field(("source_run_id",), M.c.source_run_id, nullable=True),
        Field(("version",), M.c.version, Kind.INTEGER),
        Field(("create_time",), M.c.create_time, Kind.TIMESTAMP_MS),
        Field(("update_time",), M.c.update_time, Kind.TIMESTAMP_MS),
    ),
    maps=(
        MapField(("params",), link=P.c.model_id == M.c.model_id, key_column=P.c.key, value_column=P.c.value),
        MapField(("tags",), link=T.c.model_id == M.c.model_id, key_column=T.c.key, value_column=T.c.value),
    ),
    custom=(CustomKey(_metric_filter, prefixes=("metrics",), doc="metrics.<key>"),),
)

# -- order -----------------------------------------------------------------------------------

ORDER = OrderSpec(
    keys=(
        OrderKey(("name",), M.c.name),
        OrderKey(("version",), M.c.version),
        OrderKey(("create_time",), M.c.create_time),
        OrderKey(("update_time",), M.c.update_time),
        OrderKey(("model_id",), M.c.model_id),
    ),
    default=("create_time DESC",),
    tiebreaker="model_id",
)
_METRIC_ITEM = re.compile(r"metrics\.(?:`([^`]+)`|(\S+))(?:\s+(\S+))?", re.DOTALL)


def _order_error(message: str) -> InvalidArgument:
    return InvalidArgument("INVALID_ORDER_BY", message, [FieldViolation("order_by", message)])


def _metric_terms(item: str) -> list[OrderTerm] | None:
    """The two sort terms of a ``metrics.<k> [ASC|DESC]`` item (None: not a metric item)."""
    m = _METRIC_ITEM.fullmatch(item.strip())
    if m is None:
        if item.strip().startswith("metrics."):
            raise _order_error(f"order_by item {item[:60]!r} is not 'metrics.<key> [ASC|DESC]'")
        return None
    name, direction = m[1] or m[2], (m[3] or "ASC").upper()
    if "\x00" in name:
        raise _order_error("order_by keys must not contain the NUL character")
    if direction not in ("ASC", "DESC"):
        raise _order_error(f"invalid direction {m[3][:20]!r} in order_by (use ASC or DESC)")
    value = latest_value(name)
    group = sa.case((sa.not_(_has_metric(name)), 2), (value.is_(None), 1), else_=0)
    descending = direction == "DESC"
    key = f"metrics.{name}"
    return [OrderTerm(key, group), OrderTerm(f"{key}\x00value", sa.func.coalesce(value, 0.0), descending)]


def order_terms(items: Sequence[str]) -> list[OrderTerm]:
    """Resolve ``order_by`` (or the default) to sort terms ending with ``model_id ASC``."""
    terms: list[OrderTerm] = []
    for item in items or ORDER.default:
        resolved = _metric_terms(item) or parse_order_by([item], ORDER)[:1]
        if any(t.name == resolved[0].name for t in terms):
            raise _order_error(f"order_by key {resolved[0].name[:60]!r} appears more than once")
        terms.extend(resolved)
    if not any(t.name == "model_id" for t in terms):
        terms.append(OrderTerm("model_id", M.c.model_id))
    return terms


# -- search ----------------------------------------------------------------------------------


def search(
    uow: UnitOfWork, experiment_ids: Sequence[int], query: SearchQuery, view: str
) -> tuple[list[LoggedModel], str]:
    """One page of the models of ``experiment_ids`` in ``view`` matching ``query``, and the next token."""
    terms = order_terms(query.order_by)
    ids = sorted(set(experiment_ids))
    labels = [f"o_{i}" for i in range(len(terms))]
    stmt = with_children(uow.dialect).add_columns(*(t.column.label(n) for t, n in zip(terms, labels, strict=True)))
    stmt = stmt.where(M.c.experiment_id.in_(ids))
    if view != "all":
        stmt = stmt.where(M.c.lifecycle_stage == view)
    rows, token = search_page(
        uow, RPC, stmt, query, FILTERS, terms, lambda row: [row._mapping[n] for n in labels], view, ids
    )
    return load_page(uow, rows), token
