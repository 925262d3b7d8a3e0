"""The one way every List/Search RPC runs: filter, order, keyset page, signed token.

A repository builds its base SELECT (which must select every order column) and calls
``run_search`` with its ``FilterSpec`` and ``OrderSpec``; the page token is bound to the RPC
name, the filter text, the resolved order and any extra scope (view, parent ids), so a token
reused with anything else is INVALID_PAGE_TOKEN.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from sqlalchemy import Row, Select

from store.domain import SearchQuery
from store.query.filter_sql import FilterSpec, compile_filter
from store.query.keyset import (
    OrderSpec,
    OrderTerm,
    TokenValue,
    binding_of,
    fetch_page,
    order_text,
    parse_order_by,
    row_values,
)

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
) -> tuple[list[Row[Any]], str]:
    """``run_search`` for an order resolved by the caller (sort terms an ``OrderSpec`` cannot
    express, such as ``metrics.<k>``); ``values_of`` reads a row's sort values."""
    where = compile_filter(query.filter, filters)
    binding = binding_of(rpc, query.filter, order_text(terms), *scope)
    codec = uow.db.page_tokens
    after = codec.decode(query.page_token, binding) if query.page_token else None
    if where is not None:
        stmt = stmt.where(where)
    rows, last = fetch_page(
        lambda s: uow.conn.execute(s).all(),
        stmt,
        terms,
        page_size=query.page_size,
        after=after,
        values_of=values_of,
    )
    return rows, (codec.encode(last, binding) if last is not None else "")
