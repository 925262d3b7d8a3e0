"""Page tokens, order_by parsing and page-size rules (the SQL side is in tests/store)."""

from __future__ import annotations

import base64
import hashlib
import hmac

import pytest
import sqlalchemy as sa
from hypothesis import given, settings, strategies as st

from store.errors import InvalidArgument
from store.query.keyset import (
    OrderKey,
    OrderSpec,
    PageTokenCodec,
    TokenValue,
    binding_of,
    keyset_predicate,
    order_text,
    page_size_of,
    parse_order_by,
)

SECRET = b"0123456789abcdef-test-secret"
codec = PageTokenCodec(SECRET)
BINDING = binding_of("SearchItems", "name = 'x'", ["n DESC"], 1)

values_strategy = st.lists(
    st.one_of(
        st.text(),
        st.integers(),
        st.integers(min_value=2**53, max_value=2**200),
        st.floats(allow_nan=False),
        st.booleans(),
    ),
    max_size=6,
)


def b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def unb64(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def token_error(token: str, binding: str = BINDING) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        codec.decode(token, binding)
    error = info.value
    assert error.reason == "INVALID_PAGE_TOKEN"
    assert [v.field for v in error.violations] == ["page_token"]
    return error


def signed(payload: bytes) -> str:
    """A correctly signed token around an arbitrary payload (to reach the checks after the MAC)."""
    return b64(payload + hmac.new(SECRET, payload, hashlib.sha256).digest()[:16])


def digest(binding: str) -> bytes:
    return hashlib.sha256(binding.encode()).digest()[:8]


# ---------------------------------------------------------------- tokens


@settings(max_examples=300)
@given(values_strategy, st.text())
def test_token_round_trip(values: list[TokenValue], binding: str) -> None:
    token = codec.encode(values, binding)
    assert token.isascii()
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    decoded = codec.decode(token, binding)
    assert decoded == values
    assert [type(v) for v in decoded] == [type(v) for v in values]


def test_exact_big_ints_and_unicode() -> None:
    values: list[TokenValue] = [2**63 - 1, -(2**63), 2**53 + 1, 10**40, "日本語 🎉\n\"'\\", 0.1, -0.0, True]
    assert codec.decode(codec.encode(values, "b"), "b") == values


@settings(max_examples=300)
@given(values_strategy, st.data())
def test_any_tampered_byte_is_rejected(values: list[TokenValue], data: st.DataObject) -> None:
    raw = bytearray(unb64(codec.encode(values, BINDING)))
    index = data.draw(st.integers(min_value=0, max_value=len(raw) - 1))
    raw[index] ^= data.draw(st.integers(min_value=1, max_value=255))
    token_error(b64(bytes(raw)))


@settings(max_examples=300)
@given(values_strategy, st.data())
def test_any_changed_character_is_rejected(values: list[TokenValue], data: st.DataObject) -> None:
    token = codec.encode(values, BINDING)
    index = data.draw(st.integers(min_value=0, max_value=len(token) - 1))
    alphabet = [c for c in "AQgw_-9zB=+/." if c != token[index]]
    token_error(token[:index] + data.draw(st.sampled_from(alphabet)) + token[index + 1 :])


@settings(max_examples=100)
@given(values_strategy, st.data())
def test_truncated_or_extended_token_is_rejected(values: list[TokenValue], data: st.DataObject) -> None:
    token = codec.encode(values, BINDING)
    token_error(token[: data.draw(st.integers(min_value=0, max_value=len(token) - 1))])
    token_error(token + data.draw(st.sampled_from(["A", "AA", "AAAA", "="])))


@settings(max_examples=100)
@given(values_strategy, st.text())
def test_other_binding_is_rejected(values: list[TokenValue], other: str) -> None:
    if other == BINDING:
        return
    message = token_error(codec.encode(values, BINDING), other).message
    assert "different filter, order or scope" in message


def test_binding_distinguishes_parts() -> None:
    assert binding_of("a", "b") != binding_of("ab")
    assert binding_of("a", None) != binding_of("a", "None")
    assert binding_of("x", ["n DESC"]) != binding_of("x", ["n ASC"])
    assert binding_of("x", 1) != binding_of("x", "1")
    assert binding_of("x", ("a", "b")) == binding_of("x", ["a", "b"])


def test_other_secret_is_malformed() -> None:
    token = PageTokenCodec(b"another-secret-of-16+bytes").encode([1], BINDING)
    assert "malformed" in token_error(token).message


def test_wrong_version_is_rejected() -> None:
    token = signed(bytes([2]) + digest(BINDING) + b"[1]")
    assert "unsupported version" in token_error(token).message


@pytest.mark.parametrize("body", [b"", b"[", b"{}", b"1", b"[null]", b"[[1]]", b'[{"a":1}]', b"\xff"])
def test_signed_but_malformed_values_are_rejected(body: bytes) -> None:
    assert "malformed" in token_error(signed(bytes([1]) + digest(BINDING) + body)).message


@settings(max_examples=500)
@given(st.one_of(st.text(), st.text(alphabet="ABCDEFGHIJabcdefgh0123456789-_", max_size=200)))
def test_garbage_is_invalid_page_token(garbage: str) -> None:
    token_error(garbage)


@pytest.mark.parametrize("garbage", ["", "=", "A" * 100_000, "é", "\x00", "AAAA====", "eyJvZmZzZXQiOiAxfQ=="])
def test_known_garbage(garbage: str) -> None:
    token_error(garbage)


def test_short_secret_and_bad_values_are_programming_errors() -> None:
    with pytest.raises(ValueError):
        PageTokenCodec(b"short")
    with pytest.raises(TypeError):
        codec.encode([None], BINDING)  # type: ignore[list-item]


# ---------------------------------------------------------------- order_by

items = sa.table("items", sa.column("id"), sa.column("name"), sa.column("n"), sa.column("created_ms"))
SPEC = OrderSpec(
    keys=(
        OrderKey(("name", "attributes.name"), items.c.name),
        OrderKey(("n",), items.c.n),
        OrderKey(("created_ms", "creation_time"), items.c.created_ms),
        OrderKey(("id",), items.c.id),
    ),
    default=("created_ms DESC",),
    tiebreaker="id",
)


def order(*items_: str) -> str:
    return order_text(parse_order_by(list(items_), SPEC))


def test_order_by_parsing() -> None:
    assert order() == "created_ms DESC, id ASC"
    assert order("name") == "name ASC, id ASC"
    assert order("attributes.name desc", "n Asc") == "name DESC, n ASC, id ASC"
    assert order("  creation_time   DESC ") == "created_ms DESC, id ASC"
    assert order("id DESC") == "id DESC"
    assert order("id", "name") == "id ASC, name ASC"


def order_error(*items_: str) -> str:
    with pytest.raises(InvalidArgument) as info:
        parse_order_by(list(items_), SPEC)
    assert info.value.reason == "INVALID_ORDER_BY"
    assert [v.field for v in info.value.violations] == ["order_by"]
    return info.value.message


def test_order_by_errors() -> None:
    assert "unknown order_by key 'tags.env'" in order_error("tags.env")
    assert "valid keys: name, n, created_ms, id" in order_error("bogus")
    assert "invalid direction 'UP'" in order_error("name UP")
    assert "appears more than once" in order_error("name", "attributes.name DESC")
    assert "appears more than once" in order_error("n", "n")
    assert "is not '<key> [ASC|DESC]'" in order_error("name ASC extra")
    assert "is not '<key> [ASC|DESC]'" in order_error("   ")
    assert "is not '<key> [ASC|DESC]'" in order_error("name; DROP TABLE items")
    assert "unknown order_by key 'name;--'" in order_error("name;-- DESC")


def test_bad_tiebreaker_is_programming_error() -> None:
    with pytest.raises(ValueError):
        parse_order_by([], OrderSpec(keys=SPEC.keys, default=(), tiebreaker="nope"))


def test_keyset_predicate_needs_one_value_per_term() -> None:
    terms = parse_order_by(["name"], SPEC)
    keyset_predicate(terms, ["a", 1])
    with pytest.raises(InvalidArgument) as info:
        keyset_predicate(terms, ["a"])
    assert info.value.reason == "INVALID_PAGE_TOKEN"


def test_keyset_predicate_binds_values() -> None:
    terms = parse_order_by(["name DESC"], SPEC)
    compiled = keyset_predicate(terms, ["x' OR '1'='1", 5]).compile()
    assert "OR '1'" not in str(compiled)
    assert "x' OR '1'='1" in compiled.params.values()


# ---------------------------------------------------------------- page size


def test_page_size() -> None:
    assert page_size_of(0) == 100
    assert page_size_of(7) == 7
    assert page_size_of(1000) == 1000
    assert page_size_of(5000) == 1000
    with pytest.raises(InvalidArgument) as info:
        page_size_of(-1)
    assert info.value.reason == "INVALID_FIELD"
    assert [v.field for v in info.value.violations] == ["page_size"]
