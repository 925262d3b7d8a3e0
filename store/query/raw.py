"""Hot-path execution: SQLAlchemy statements compiled once, run on the driver's cursor.

SQLAlchemy's per-execution machinery (cache-key generation, execution context, result
processing) costs more CPU than the database round trip of a primary-key lookup: measured on
PostgreSQL, 202 µs per GetExperiment query through ``Connection.execute`` vs 132 µs on the
cursor (89 vs 33 µs on SQLite). ``compile_raw`` renders a statement to the dialect's SQL text
once; ``UnitOfWork.fetch`` then runs it on the unit of work's own connection (same
transaction), returning named tuples. The SQL is still written with SQLAlchemy, in one place.

Only for statements whose parameters and results need no type processing (integers, strings,
JSON) and with no expanding (``IN``) parameters: a list of ids is one parameter (``ForIds``).
"""

from __future__ import annotations

import json
from collections import namedtuple
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.sql import ClauseElement, ColumnElement


@dataclass(frozen=True, slots=True)
class RawStatement:
    sql: str
    positional: tuple[str, ...] | None  # parameter names in order, for qmark drivers (SQLite)
    row: type[tuple[Any, ...]] | None  # named tuple of the result columns (None: no rows)
    defaults: dict[str, Any]  # values of the statement's own literals (e.g. CASE ... THEN 0)

    def parameters(self, params: dict[str, Any]) -> Any:
        if self.defaults:
            params = self.defaults | params
        return params if self.positional is None else [params[name] for name in self.positional]


_CACHE: dict[tuple[int, str], RawStatement] = {}  # (statement, dialect and suffix)


def compile_raw(stmt: ClauseElement, dialect: Dialect, suffix: str = "") -> RawStatement:
    """The statement as SQL text for ``dialect`` (memoized per statement object), followed by
    ``suffix``: SQL that SQLAlchemy cannot express, such as two locking clauses of PostgreSQL
    (``FOR KEY SHARE OF a FOR SHARE OF b``)."""
    key = (id(stmt), dialect.name + suffix)
    found = _CACHE.get(key)
    if found is not None:
        return found
    compiled = stmt.compile(dialect=dialect)
    if compiled.post_compile_params:  # type: ignore[attr-defined]
        raise ValueError("compile_raw: expanding (IN) parameters are not supported")
    defaults = {k: v for k, v in compiled.params.items() if v is not None}
    raw = _raw_statement(stmt, compiled, defaults, suffix)
    _CACHE[key] = raw
    _KEEP.append(stmt)  # the id() key stays valid only while the statement lives
    return raw


_KEEP: list[ClauseElement] = []


def _raw_statement(stmt: ClauseElement, compiled: Any, defaults: dict[str, Any], suffix: str = "") -> RawStatement:
    """The SQL text of ``compiled`` (then ``suffix``), its parameter order for qmark drivers
    and a named tuple of its result columns (of a SELECT, or of an INSERT/UPDATE's RETURNING)."""
    columns = getattr(stmt, "selected_columns", None) or getattr(stmt, "_returning", None)
    row = namedtuple("Row", [c.name for c in columns], rename=True) if columns else None  # type: ignore[misc]
    order = getattr(compiled, "positiontup", None)
    positional = tuple(order) if order is not None else None
    return RawStatement(f"{compiled} {suffix}" if suffix else str(compiled), positional, row, defaults)


T = TypeVar("T")


class ShapeCache(Generic[T]):
    """What a statement built per call compiles to (``compile_shape``), by a key of what decides
    its SQL; at most ``size`` kept, then it starts over (many distinct filters, say). Two
    threads missing the same key both compile it, and one result stays."""

    def __init__(self, size: int = 512) -> None:
        self._items: dict[Any, T] = {}
        self._size = size

    def get(self, key: Any, build: Callable[[], T]) -> T:
        try:
            return self._items[key]
        except KeyError:
            pass
        value = build()  # raises (a bad filter, say) before anything is kept
        if len(self._items) >= self._size:
            self._items.clear()
        self._items[key] = value
        return value


def compile_shape(stmt: ClauseElement, dialect: Dialect) -> RawStatement | None:
    """A statement built per call, compiled for ``UnitOfWork.fetch_raw``; the caller caches it
    by what decides its shape, with the values that vary as named parameters. Its other values
    (literals, such as a filter's) become its defaults, through their types' bind processors
    as SQLAlchemy would apply them (SQLite's JSON paths, say). None when it has expanding
    parameters (a filter's ``IN``): such a statement is left to SQLAlchemy."""
    compiled = stmt.compile(dialect=dialect)
    if compiled.post_compile_params:  # type: ignore[attr-defined]
        return None
    defaults = {}
    for name, value in compiled.params.items():
        if value is None:  # a named parameter: given at each run
            continue
        process = compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)  # type: ignore[attr-defined]
        defaults[name] = process(value) if process is not None else value
    return _raw_statement(stmt, compiled, defaults)


def json_value(value: Any) -> Any:
    """A JSON column's value as the driver returns it: parsed already (PostgreSQL json/jsonb),
    or its text (SQLite; numbers come back as numbers, a column declared JSON having NUMERIC
    affinity). Only for columns whose values are objects or arrays, or on SQLite: a PostgreSQL
    jsonb string arrives as a ``str`` that is not JSON text."""
    return json.loads(value) if isinstance(value, str) else value


def in_list(dialect: str, column: Any, name: str, element: Any = sa.Text) -> ColumnElement[bool]:
    """``column`` is one of the values of the list parameter ``name`` (``list_param``): one bound
    parameter per list, so that the statement compiles once and runs on the driver's cursor.
    ``= ANY(CAST(:name AS element[]))`` on PostgreSQL, ``IN (SELECT value FROM json_each(:name))``
    with a JSON array on SQLite."""
    condition: ColumnElement[bool]
    if dialect == "postgresql":
        condition = column == sa.any_(sa.cast(sa.bindparam(name), postgresql.ARRAY(element)))
    else:
        each = sa.func.json_each(sa.bindparam(name, type_=sa.Text)).table_valued("value")
        condition = column.in_(sa.select(each.c.value))
    return condition


def list_param(dialect: str, values: Sequence[Any]) -> Any:
    """The value of an ``in_list`` parameter."""
    return list(values) if dialect == "postgresql" else json.dumps(list(values))


@dataclass(frozen=True)
class ForIds:
    """A statement over a list of ids (``b_ids``), built once per backend so that it compiles
    once: ``= ANY(CAST(:b_ids AS TEXT[]))`` on PostgreSQL, ``IN (SELECT value FROM
    json_each(:b_ids))`` on SQLite. An expanding ``IN`` would be compiled again on every call,
    through SQLAlchemy's whole execution path. Run with ``UnitOfWork.fetch_ids``."""

    postgresql: ClauseElement
    sqlite: ClauseElement
    pg_suffix: str = ""  # SQL after the PostgreSQL statement (see ``compile_raw``)

    @classmethod
    def build(cls, column: Any, make: Callable[[Any], ClauseElement], pg_suffix: str = "") -> ForIds:
        """``make(condition)``: the statement, given the condition "``column`` is one of the ids"."""
        return cls(make(in_list("postgresql", column, "b_ids")), make(in_list("sqlite", column, "b_ids")), pg_suffix)

    def parameter(self, dialect: str, ids: Sequence[str]) -> Any:
        return list_param(dialect, ids)
