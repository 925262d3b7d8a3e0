"""The filter keys and orders of SearchTraces (SPEC §3.4).

Trace columns are plain fields; `tags.<k>` and `metadata.<k>` are key/value child tables;
the rest are EXISTS probes into a trace's spans or valid assessments:

* `span.name`, `span.type`, `span.status`: some span of the trace matches;
* `span.attributes.<k>`: some span has attribute `<k>` whose value (as text for strings, JSON
  text otherwise: `true`, `0.5`; objects and arrays in the backend's JSON spelling) matches;
* `feedback.<name>`, `expectation.<name>`: some *valid* assessment of that kind and name has a
  matching value — strings compare with strings, booleans with booleans, numbers with numbers;
  `<`, `<=`, `>`, `>=` match true numbers only (a boolean or "yes" never satisfies `> 0.5`);
  `IS NOT NULL` / `IS NULL`: such an assessment exists / does not;
* `trace.text`: LIKE / ILIKE over some span's inputs and outputs (as JSON text);
* `run_id`: the run named by metadata `mlflow.sourceRun` or a run the trace is linked to
  (LinkTracesToRun) matches; `IS NULL`: neither.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.functions import FunctionElement

from store.orm.base import table
from store.orm.runs import TraceRunLinkRow
from store.orm.traces import AssessmentRow, SpanRow, TraceMetadataRow, TraceRow, TraceTagRow
from store.query.filter_sql import DEFAULT_OPS, CustomKey, Field, FilterSpec, Kind, MapField, compare, refuse
from store.query.filters import BINARY_OPS, IN_OPS, NULL_OPS, Comparison, filter_error
from store.query.keyset import OrderKey, OrderSpec

TR = table(TraceRow)
TT = table(TraceTagRow)
TM = table(TraceMetadataRow)
S = table(SpanRow)
A = table(AssessmentRow)
TRL = table(TraceRunLinkRow)

_STATES = ("OK", "ERROR", "IN_PROGRESS")
_SPAN_STATUSES = ("UNSET", "OK", "ERROR")


def _one_of(allowed: tuple[str, ...], key: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, str) and value.upper() in allowed:
            return value.upper()
        raise refuse_value(key, value, allowed)

    return check


def refuse_value(key: str, value: Any, allowed: tuple[str, ...]) -> Exception:
    return filter_error(f"{key} must be one of {', '.join(allowed)} (got {str(value)[:40]!r})")


def _names(*names: str) -> tuple[str, ...]:
    return tuple(n for name in names for n in (name, f"trace.{name}", f"attributes.{name}"))


def _span_exists(condition: ColumnElement[bool]) -> ColumnElement[bool]:
    return sa.exists().where(S.c.trace_id == TR.c.trace_id, condition)


def _span_key(rest: str, cmp: Comparison) -> ColumnElement[bool]:
    if rest == "name":
        return _span_exists(compare(S.c.name, cmp))
    if rest == "type":
        return _span_exists(compare(S.c.span_type, cmp))
    if rest == "status":
        return _span_exists(compare(S.c.status, cmp, coerce=_one_of(_SPAN_STATUSES, "span.status")))
    if rest.startswith("attributes.") and len(rest) > len("attributes."):
        return _span_exists(compare(_attribute(rest.removeprefix("attributes.")), cmp, nullable=True))
    raise refuse(cmp, "span keys are span.name, span.type, span.status and span.attributes.<key>")


class span_attribute(FunctionElement[str]):  # noqa: N801 - named like the SQL functions it stands for
    """``span_attribute(spans.payload, :key)``: the text of one attribute of a span, or NULL.

    Strings as they are; numbers, booleans (``true``/``false``), objects and arrays as JSON
    text; NULL when the attribute is absent or JSON null. The key is a bound parameter on both
    backends, so any key works (dots, quotes, commas, braces): SQLAlchemy's JSON path
    parameters would split or garble such keys (a text-array literal on PostgreSQL, an
    unescapable ``$."…"`` path on SQLite).
    """

    type = sa.Text()
    inherit_cache = True


@compiles(span_attribute)
def _span_attribute_pg(element: span_attribute, compiler: Any, **kw: Any) -> str:
    payload, key = (compiler.process(c, **kw) for c in element.clauses)
    return f"jsonb_extract_path_text({payload}, 'attributes', {key})"


@compiles(span_attribute, "sqlite")
def _span_attribute_sqlite(element: span_attribute, compiler: Any, **kw: Any) -> str:
    payload, key = (compiler.process(c, **kw) for c in element.clauses)
    # json_each compares the key as a value (no path syntax); json_extract would give 1/0 for booleans.
    return (
        "(SELECT CASE span_attr.type WHEN 'true' THEN 'true' WHEN 'false' THEN 'false' WHEN 'null' THEN NULL"
        f" ELSE CAST(span_attr.value AS TEXT) END FROM json_each({payload}, '$.attributes') AS span_attr"
        f" WHERE span_attr.key = {key})"
    )


def _attribute(key: str) -> ColumnElement[Any]:
    """The text of one span attribute (see ``span_attribute``)."""
    return span_attribute(S.c.payload, sa.bindparam(None, key, type_=sa.Text()))


def _assessment_key(kind: str) -> Any:
    def build(name: str, cmp: Comparison) -> ColumnElement[bool]:
        if not name:
            raise refuse(cmp, f"use {kind}.<name>")
        of_name = [A.c.trace_id == TR.c.trace_id, A.c.valid.is_(True), A.c.kind == kind, A.c.name == name]
        if cmp.op in NULL_OPS:
            exists = sa.exists().where(*of_name)
            return sa.not_(exists) if cmp.op == "IS NULL" else exists
        return sa.exists().where(*of_name, _value_predicate(cmp))

    return build


def _value_predicate(cmp: Comparison) -> ColumnElement[bool]:
    ops = BINARY_OPS | IN_OPS
    values = cmp.value if isinstance(cmp.value, tuple) else (cmp.value,)
    if all(isinstance(v, bool) for v in values):
        return compare(A.c.value_bool, cmp, kind=Kind.BOOLEAN, nullable=True, ops=frozenset({"=", "!="}))
    if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values):
        return compare(A.c.value_number, cmp, kind=Kind.NUMBER, nullable=True, ops=ops)
    if all(isinstance(v, str) for v in values):
        return compare(A.c.value_string, cmp, nullable=True)
    raise refuse(cmp, "compare with strings, numbers or booleans, not a mix")


def _text_key(_key: str, cmp: Comparison) -> ColumnElement[bool]:
    if cmp.op not in ("LIKE", "ILIKE", "NOT LIKE", "NOT ILIKE"):
        raise refuse(cmp, "trace.text takes LIKE or ILIKE")
    negate = cmp.op.startswith("NOT ")
    positive = Comparison(cmp.key, cmp.op.removeprefix("NOT "), cmp.value, cmp.position)
    inputs = sa.cast(S.c.payload["inputs"].as_string(), sa.Text)
    outputs = sa.cast(S.c.payload["outputs"].as_string(), sa.Text)
    found = _span_exists(sa.or_(compare(inputs, positive, nullable=True), compare(outputs, positive, nullable=True)))
    return sa.not_(found) if negate else found


def _run_key(_key: str, cmp: Comparison) -> ColumnElement[bool]:
    """The trace's runs: the one its metadata ``mlflow.sourceRun`` names (``traces.run_id``)
    and those it is linked to (``trace_run_links``). A comparison matches when one of them
    does (``run_id != 'x'``: the trace has a run other than x); ``IS NULL``: it has neither.
    The links are probed by an uncorrelated ``trace_id IN (SELECT … WHERE run_id …)``, which
    seeks the links' primary key (run_id, trace_id) for ``=`` and ``IN``."""
    if cmp.op in NULL_OPS:
        linked = sa.exists().where(TRL.c.trace_id == TR.c.trace_id)
        if cmp.op == "IS NULL":
            return sa.and_(TR.c.run_id.is_(None), sa.not_(linked))
        return sa.or_(TR.c.run_id.is_not(None), linked)
    ops = DEFAULT_OPS[Kind.STRING]
    own = compare(TR.c.run_id, cmp, nullable=True, ops=ops)
    linked_ids = sa.select(TRL.c.trace_id).where(compare(TRL.c.run_id, cmp, ops=ops))
    return sa.or_(own, TR.c.trace_id.in_(linked_ids))


FILTERS = FilterSpec(
    fields=(
        Field(_names("status", "state"), TR.c.state, coerce=_one_of(_STATES, "trace.status")),
        Field(_names("timestamp_ms", "request_time"), TR.c.request_time, Kind.TIMESTAMP_MS),
        Field(_names("execution_time_ms"), TR.c.execution_duration, Kind.INTEGER, nullable=True),
        Field(_names("name"), TR.c.name, nullable=True),
        Field(_names("client_request_id"), TR.c.client_request_id, nullable=True),
        Field(_names("trace_id", "request_id"), TR.c.trace_id),
        Field(_names("model_id"), TR.c.model_id, nullable=True),
        Field(_names("session_id"), TR.c.session_id, nullable=True),
        Field(_names("user_id"), TR.c.user_id, nullable=True),
    ),
    maps=(
        MapField(("tags", "tag"), TT.c.trace_id == TR.c.trace_id, TT.c.key, TT.c.value),
        MapField(("metadata", "request_metadata"), TM.c.trace_id == TR.c.trace_id, TM.c.key, TM.c.value),
    ),
    custom=(
        CustomKey(_span_key, prefixes=("span",), doc="span.name|type|status|attributes.<key>"),
        CustomKey(_assessment_key("feedback"), prefixes=("feedback",), doc="feedback.<name>"),
        CustomKey(_assessment_key("expectation"), prefixes=("expectation",), doc="expectation.<name>"),
        CustomKey(_text_key, names=("trace.text",), doc="trace.text"),
        CustomKey(_run_key, names=_names("run_id"), doc="run_id"),
    ),
)

ORDER = OrderSpec(
    keys=(
        OrderKey(_names("request_time", "timestamp_ms"), TR.c.request_time),
        # NULL (still running) sorts as -1 so the keyset cursor stays total.
        OrderKey(_names("execution_time_ms"), sa.func.coalesce(TR.c.execution_duration, -1)),
        OrderKey(_names("trace_id"), TR.c.trace_id),
    ),
    default=("request_time DESC",),
    tiebreaker="trace_id",
)
