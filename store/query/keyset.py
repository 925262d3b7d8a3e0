"""Ordering, keyset pagination and page tokens of every List/Search RPC (SPEC §1.5, §1.6).

``order_by`` takes items ``"<key> [ASC|DESC]"`` (direction case-insensitive, ASC by default)
over the keys an RPC documents (``OrderSpec``). A key may appear once. An empty ``order_by``
means the RPC's default order. Every order ends with a unique tie-breaker (the resource id,
ascending, appended unless the request already orders by it), so the order is total.
Order columns are assumed NOT NULL: the keyset comparison below treats values as comparable
and a NULL would make rows vanish from later pages.

Pages are keyset cursors, never offsets: the next page holds the rows that sort strictly
after the last row of the previous one (``keyset_predicate``), so rows inserted while a client
pages never make it skip or repeat a row that existed when paging began.

A page token carries the sort values of that last row, signed with HMAC-SHA256 and bound to
everything the listing depends on (RPC, filter, order_by, view, scope ids; ``binding_of``).
It is urlsafe base64 without padding of::

    version (1 byte) | SHA-256(binding)[:8] | JSON list of values | HMAC-SHA256(secret, all before)[:16]

Tokens are signed, not encrypted: they reveal the sort values of a row the client has seen.
A garbage, truncated or altered token, or one issued for another filter/order/scope, is
``InvalidArgument`` with reason ``INVALID_PAGE_TOKEN``.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import ColumnElement, Row, Select

from store.errors import FieldViolation, InvalidArgument

TokenValue = str | int | float | bool
R = TypeVar("R")

DEFAULT_PAGE_SIZE = 100
MAX_PAGE_SIZE = 1_000
TOKEN_VERSION = 1
MAX_TOKEN_CHARS = 65_536
_DIGEST_BYTES = 8
_MAC_BYTES = 16


def _order_error(message: str) -> InvalidArgument:
    return InvalidArgument("INVALID_ORDER_BY", message, [FieldViolation("order_by", message)])


def _token_error(message: str) -> InvalidArgument:
    return InvalidArgument("INVALID_PAGE_TOKEN", message, [FieldViolation("page_token", message)])


def page_size_of(requested: int, default: int = DEFAULT_PAGE_SIZE, maximum: int = MAX_PAGE_SIZE) -> int:
    """The effective page size: 0 means ``default``, larger than ``maximum`` is clamped."""
    if requested < 0:
        message = f"page_size must not be negative (got {requested})"
        raise InvalidArgument("INVALID_FIELD", message, [FieldViolation("page_size", message)])
    return default if requested == 0 else min(requested, maximum)


# ---------------------------------------------------------------- ordering


@dataclass(frozen=True, eq=False)
class OrderKey:
    """One orderable column, accepted under each spelling in ``names`` (the first is canonical)."""

    names: tuple[str, ...]
    column: ColumnElement[Any]


@dataclass(frozen=True, eq=False)
class OrderSpec:
    """The order keys of one RPC, its default order and its unique tie-breaker key."""

    keys: tuple[OrderKey, ...]
    default: tuple[str, ...]
    tiebreaker: str

    def find(self, name: str) -> OrderKey | None:
        return next((k for k in self.keys if name in k.names), None)


@dataclass(frozen=True, eq=False)
class OrderTerm:
    name: str
    column: ColumnElement[Any]
    descending: bool = False

    def clause(self) -> ColumnElement[Any]:
        return self.column.desc() if self.descending else self.column.asc()

    def text(self) -> str:
        return f"{self.name} {'DESC' if self.descending else 'ASC'}"


def _clip(text: str, limit: int = 60) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _parse_item(item: str, spec: OrderSpec) -> tuple[OrderKey, bool]:
    words = item.split()
    if not 1 <= len(words) <= 2:
        raise _order_error(f"order_by item {_clip(item)!r} is not '<key> [ASC|DESC]'")
    key = spec.find(words[0])
    if key is None:
        valid = ", ".join(k.names[0] for k in spec.keys)
        raise _order_error(f"unknown order_by key {_clip(words[0])!r}; valid keys: {valid}")
    direction = words[1].upper() if len(words) == 2 else "ASC"
    if direction not in ("ASC", "DESC"):
        raise _order_error(f"invalid direction {_clip(words[1])!r} in order_by (use ASC or DESC)")
    return key, direction == "DESC"


def parse_order_by(items: Sequence[str], spec: OrderSpec) -> list[OrderTerm]:
    """Resolve ``order_by`` items (or the default) and append the tie-breaker."""
    terms: list[OrderTerm] = []
    for item in items or spec.default:
        key, descending = _parse_item(item, spec)
        if any(t.name == key.names[0] for t in terms):
            raise _order_error(f"order_by key {key.names[0]!r} appears more than once")
        terms.append(OrderTerm(key.names[0], key.column, descending))
    tiebreaker = spec.find(spec.tiebreaker)
    if tiebreaker is None:
        raise ValueError(f"OrderSpec tie-breaker {spec.tiebreaker!r} is not one of its keys")
    if not any(t.name == tiebreaker.names[0] for t in terms):
        terms.append(OrderTerm(tiebreaker.names[0], tiebreaker.column))
    return terms


def order_text(terms: Sequence[OrderTerm]) -> str:
    """A canonical spelling of the resolved order, e.g. for ``binding_of``."""
    return ", ".join(t.text() for t in terms)


# ---------------------------------------------------------------- keyset


def keyset_predicate(terms: Sequence[OrderTerm], last_values: Sequence[TokenValue]) -> ColumnElement[bool]:
    """Rows that sort strictly after the row whose sort values are ``last_values``.

    ``(c1 > v1) OR (c1 = v1 AND c2 < v2) OR …`` with ``<`` for DESC terms, plus the redundant
    ``c1 >= v1`` (``<=`` for DESC) in front so an index on the first column can be used.
    """
    if len(last_values) != len(terms) or not terms:
        raise _token_error("page_token does not match this order")
    return _after([sa.bindparam(None, v, type_=t.column.type) for t, v in zip(terms, last_values, strict=True)], terms)


def named_keyset_predicate(terms: Sequence[OrderTerm]) -> ColumnElement[bool]:
    """``keyset_predicate`` with the last row's values as named parameters ``b_after<i>``, for
    a statement compiled once and run with each page's values (``after_parameters``)."""
    return _after([sa.bindparam(f"b_after{i}", type_=t.column.type) for i, t in enumerate(terms)], terms)


def after_parameters(terms: Sequence[OrderTerm], last_values: Sequence[TokenValue]) -> dict[str, TokenValue]:
    """The values of ``named_keyset_predicate``'s parameters."""
    if len(last_values) != len(terms) or not terms:
        raise _token_error("page_token does not match this order")
    return {f"b_after{i}": v for i, v in enumerate(last_values)}


def _after(bound: list[Any], terms: Sequence[OrderTerm]) -> ColumnElement[bool]:
    branches = []
    for i, term in enumerate(terms):
        equal = [t.column == b for t, b in zip(terms[:i], bound[:i], strict=True)]
        step = term.column < bound[i] if term.descending else term.column > bound[i]
        branches.append(sa.and_(*equal, step))
    first = terms[0]
    lead = first.column <= bound[0] if first.descending else first.column >= bound[0]
    return sa.and_(lead, sa.or_(*branches))


def apply_keyset(
    stmt: Select[Any], terms: Sequence[OrderTerm], page_size: int, after: Sequence[TokenValue] | None
) -> Select[Any]:
    """Add the cursor predicate, ORDER BY and ``LIMIT page_size + 1`` to ``stmt``."""
    if page_size < 1:
        raise ValueError("page_size must be positive")
    if after is not None:
        stmt = stmt.where(keyset_predicate(terms, after))
    return stmt.order_by(*(t.clause() for t in terms)).limit(page_size + 1)


def split_page(
    rows: Sequence[R], page_size: int, values_of: Callable[[R], Sequence[TokenValue]]
) -> tuple[list[R], list[TokenValue] | None]:
    """The page and, when a further row was fetched, the sort values of its last row."""
    page = list(rows[:page_size])
    if len(rows) > page_size and page:
        return page, list(values_of(page[-1]))
    return page, None


def row_values(terms: Sequence[OrderTerm]) -> Callable[[Row[Any]], list[TokenValue]]:
    """``values_of`` for Core rows that select every order column."""
    return lambda row: [row._mapping[t.column] for t in terms]


def fetch_page(
    run: Callable[[Select[Any]], Sequence[R]],
    stmt: Select[Any],
    terms: Sequence[OrderTerm],
    *,
    page_size: int,
    after: Sequence[TokenValue] | None,
    values_of: Callable[[R], Sequence[TokenValue]],
) -> tuple[list[R], list[TokenValue] | None]:
    """Run one keyset page: ``run`` executes a statement (e.g. ``lambda s: conn.execute(s).all()``)."""
    return split_page(run(apply_keyset(stmt, terms, page_size, after)), page_size, values_of)


# ---------------------------------------------------------------- tokens


def binding_of(*parts: object) -> str:
    """One string for everything a token is bound to: ``binding_of("SearchX", filter, order_by, …)``."""
    return json.dumps(list(parts), ensure_ascii=False, separators=(",", ":"), default=repr)


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _digest(binding: str) -> bytes:
    return hashlib.sha256(binding.encode("utf-8", "surrogatepass")).digest()[:_DIGEST_BYTES]


def _is_value(value: object) -> bool:
    return isinstance(value, (str, int, float, bool))


class PageTokenCodec:
    """Signs and checks page tokens with one server secret (≥ 16 bytes)."""

    def __init__(self, secret: bytes) -> None:
        if len(secret) < 16:
            raise ValueError("the page token secret must be at least 16 bytes")
        self._secret = secret

    def _mac(self, payload: bytes) -> bytes:
        return hmac.new(self._secret, payload, hashlib.sha256).digest()[:_MAC_BYTES]

    def encode(self, last_values: Sequence[TokenValue], binding: str) -> str:
        """The token for the page after the row whose sort values are ``last_values``."""
        if not all(_is_value(v) for v in last_values):
            raise TypeError("page token values must be str, int, float or bool")
        values = json.dumps(list(last_values), ensure_ascii=True, separators=(",", ":"))
        payload = bytes([TOKEN_VERSION]) + _digest(binding) + values.encode("ascii")
        return _b64(payload + self._mac(payload))

    def decode(self, token: str, binding: str) -> list[TokenValue]:
        """The sort values in ``token``; INVALID_PAGE_TOKEN unless it is ours and bound to ``binding``."""
        payload = self._verified_payload(token)
        if payload[0] != TOKEN_VERSION:
            raise _token_error("page_token has an unsupported version; restart the listing")
        if not hmac.compare_digest(payload[1 : 1 + _DIGEST_BYTES], _digest(binding)):
            raise _token_error(
                "page_token was issued for a different filter, order or scope; "
                "repeat the request it came from, or start again without a page_token"
            )
        try:
            values = json.loads(payload[1 + _DIGEST_BYTES :].decode("ascii"))
        except ValueError:
            values = None
        if not isinstance(values, list) or not all(_is_value(v) for v in values):
            raise _token_error("page_token is malformed")
        return values

    def _verified_payload(self, token: str) -> bytes:
        malformed = _token_error("page_token is malformed or was not issued by this server")
        if not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_CHARS:
            raise malformed
        try:
            raw = base64.b64decode(token + "=" * (-len(token) % 4), altchars=b"-_", validate=True)
        except (binascii.Error, ValueError):
            raise malformed from None
        if _b64(raw) != token or len(raw) <= 1 + _DIGEST_BYTES + _MAC_BYTES:
            raise malformed
        payload, mac = raw[:-_MAC_BYTES], raw[-_MAC_BYTES:]
        if not hmac.compare_digest(self._mac(payload), mac):
            raise malformed
        return payload
