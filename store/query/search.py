"""The one way every List/Search RPC runs: filter, order, keyset page, signed token.

A repository builds its base SELECT (which must select every order column) and calls
``run_search`` with its ``FilterSpec`` and ``OrderSpec``; the page token is bound to the RPC
name, the filter text, the resolved order and any extra scope (view, parent ids), so a token
reused with anything else is INVALID_PAGE_TOKEN.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Sequence
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import Row, Select

from store.domain import SearchQuery
from store.query.filter_sql import FilterSpec, compile_filter
from store.query.keyset import (
    OrderSpec,
    OrderTerm,
    TokenValue,
    after_parameters,
    binding_of,
    fetch_page,
    named_keyset_predicate,
    order_text,
    parse_order_by,
    row_values,
    split_page,
)
from store.query.raw import RawStatement, ShapeCache, compile_shape

if TYPE_CHECKING:
    from store.uow import UnitOfWork


def run_search(
    uow: UnitOfWork,
    rpc: str,
    stmt: Select[Any],
    query: SearchQuery,
    filters: FilterSpec,
    order: OrderSpec,
    *scope: object,
) -> tuple[list[Row[Any]], str]:
    """The rows of one page and the next page token ("" on the last page)."""
    terms = parse_order_by(query.order_by, order)
    return search_page(uow, rpc, stmt, query, filters, terms, row_values(terms), *scope)


def search_page(
    uow: UnitOfWork,
    rpc: str,
    stmt: Select[Any],
    query: SearchQuery,
    filters: FilterSpec,
    terms: Sequence[OrderTerm],
    values_of: Callable[[Row[Any]], Sequence[TokenValue]],
    *scope: object,
    params: dict[str, Any] | None = None,
) -> tuple[list[Row[Any]], str]:
    """``run_search`` for an order resolved by the caller (sort terms an ``OrderSpec`` cannot
    express, such as ``metrics.<k>``); ``values_of`` reads a row's sort values; ``params``:
    the values of the statement's named parameters, if it has any."""
    where = compile_filter(query.filter, filters)
    binding = binding_of(rpc, query.filter, order_text(terms), *scope)
    codec = uow.db.page_tokens
    after = codec.decode(query.page_token, binding) if query.page_token else None
    if where is not None:
        stmt = stmt.where(where)
    rows, last = fetch_page(
        lambda s: uow.conn.execute(s, params).all(),
        stmt,
        terms,
        page_size=query.page_size,
        after=after,
        values_of=values_of,
    )
    return rows, (codec.encode(last, binding) if last is not None else "")


# Compiled pages by shape (see ``run_search_compiled``): SQL text and where the sort values are.
_PAGES: ShapeCache[tuple[RawStatement, tuple[int, ...]] | None] = ShapeCache()


def run_search_compiled(
    uow: UnitOfWork,
    rpc: str,
    stmt: Select[Any],
    params: dict[str, Any],
    query: SearchQuery,
    filters: FilterSpec,
    order: OrderSpec,
    *scope: object,
    variant: Hashable = None,
) -> tuple[list[Any], str]:
    """``run_search`` for a base statement whose SQL depends on nothing but ``rpc``, the backend
    and ``variant`` (its values are named parameters, given in ``params``). The page's statement
    (filter, cursor, order, limit) is compiled once per filter text, order and first-or-later
    page, and run on the driver's cursor (rows are named tuples): built and run through
    SQLAlchemy on every call, it cost a SearchTraces more CPU than its query. A filter with
    ``IN`` runs through ``run_search``."""
    terms = parse_order_by(query.order_by, order)
    order_key = order_text(terms)
    binding = binding_of(rpc, query.filter, order_key, *scope)
    codec = uow.db.page_tokens
    after = codec.decode(query.page_token, binding) if query.page_token else None
    key = (uow.dialect, rpc, variant, query.filter, order_key, after is None)
    page = _PAGES.get(key, lambda: _compile_page(uow, stmt, query.filter, filters, terms, after is not None))
    if page is None:
        return search_page(uow, rpc, stmt, query, filters, terms, row_values(terms), *scope, params=params)
    raw, positions = page
    if query.page_size < 1:
        raise ValueError("page_size must be positive")
    values = {**params, "b_limit": query.page_size + 1}
    if after is not None:
        values |= after_parameters(terms, after)
    rows = uow.fetch_raw(raw, values)
    found, last = split_page(rows, query.page_size, lambda row: [row[i] for i in positions])
    return found, (codec.encode(last, binding) if last is not None else "")


def _compile_page(
    uow: UnitOfWork, stmt: Select[Any], text: str, filters: FilterSpec, terms: Sequence[OrderTerm], later: bool
) -> tuple[RawStatement, tuple[int, ...]] | None:
    where = compile_filter(text, filters)  # a bad filter raises here, before anything is kept
    if where is not None:
        stmt = stmt.where(where)
    if later:
        stmt = stmt.where(named_keyset_predicate(terms))
    stmt = stmt.order_by(*(t.clause() for t in terms)).limit(sa.bindparam("b_limit", type_=sa.Integer()))
    raw = compile_shape(stmt, uow.conn.dialect)
    if raw is None:
        return None
    columns = list(stmt.selected_columns)
    return raw, tuple(next(i for i, c in enumerate(columns) if c is t.column) for t in terms)
