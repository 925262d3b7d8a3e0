"""The filter language parser: grammar, precedence, literals, errors, limits, round trips."""

from __future__ import annotations

import pytest
from hypothesis import HealthCheck, assume, given, settings, strategies as st

from store.errors import InvalidArgument
from store.query.filters import (
    KEYWORDS,
    MAX_COMPARISONS,
    MAX_DEPTH,
    MAX_FILTER_LENGTH,
    MAX_IN_ITEMS,
    And,
    Comparison,
    Key,
    Node,
    Not,
    Or,
    literal_text,
    parse_filter,
    to_text,
)


def cmp(key: str, op: str, value: object = None) -> Comparison:
    return Comparison(Key(tuple(key.split("."))), op, value)  # type: ignore[arg-type]


def parse(text: str) -> Node:
    node = parse_filter(text)
    assert node is not None
    return node


def error_of(text: str) -> InvalidArgument:
    with pytest.raises(InvalidArgument) as info:
        parse_filter(text)
    error = info.value
    assert error.reason == "INVALID_FILTER"
    assert [v.field for v in error.violations] == ["filter"]
    return error


# ---------------------------------------------------------------- comparisons


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("a = 1", cmp("a", "=", 1)),
        ("a == 1", cmp("a", "=", 1)),
        ("a != 1", cmp("a", "!=", 1)),
        ("a <> 1", cmp("a", "!=", 1)),
        ("a < 1", cmp("a", "<", 1)),
        ("a <= 1", cmp("a", "<=", 1)),
        ("a > 1", cmp("a", ">", 1)),
        ("a >= 1", cmp("a", ">=", 1)),
        ("a>=1", cmp("a", ">=", 1)),
        ("a IN ('x')", cmp("a", "IN", ("x",))),
        ("a IN (1, 'x', 2.5, TRUE)", cmp("a", "IN", (1, "x", 2.5, True))),
        ("a NOT IN (1,2)", cmp("a", "NOT IN", (1, 2))),
        ("a IS NULL", cmp("a", "IS NULL")),
        ("a IS NOT NULL", cmp("a", "IS NOT NULL")),
        ("a LIKE 'x%'", cmp("a", "LIKE", "x%")),
        ("a NOT LIKE 'x%'", cmp("a", "NOT LIKE", "x%")),
        ("a ILIKE 'x%'", cmp("a", "ILIKE", "x%")),
        ("a NOT ILIKE 'x%'", cmp("a", "NOT ILIKE", "x%")),
        ("a RLIKE '^x'", cmp("a", "RLIKE", "^x")),
        ("a NOT RLIKE '^x'", cmp("a", "NOT RLIKE", "^x")),
        ("a = TRUE", cmp("a", "=", True)),
        ("a = false", cmp("a", "=", False)),
    ],
)
def test_each_comparator(text: str, expected: Comparison) -> None:
    assert parse(text) == expected


def test_position_is_recorded() -> None:
    node = parse("a = 1 AND  b = 2")
    assert isinstance(node, And)
    assert [c.position for c in node.items if isinstance(c, Comparison)] == [0, 11]


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("-7", -7),
        ("1.5", 1.5),
        ("-2.5e-3", -0.0025),
        ("1E3", 1000.0),
        ("1e+2", 100.0),
        (".5", 0.5),
        ("5.", 5.0),
        ("123456789012345678901234567890", 123456789012345678901234567890),
    ],
)
def test_numbers(text: str, value: float) -> None:
    node = parse(f"n = {text}")
    assert isinstance(node, Comparison)
    assert node.value == value
    assert type(node.value) is type(value)


@pytest.mark.parametrize(
    ("literal", "value"),
    [
        ("'plain'", "plain"),
        ('"double"', "double"),
        ("'it''s'", "it's"),
        ("'it\\'s'", "it's"),
        ('"say ""hi"""', 'say "hi"'),
        ('"say \\"hi\\""', 'say "hi"'),
        ("'\"'", '"'),
        ('"\'"', "'"),
        ("'\\d+\\.\\w'", "\\d+\\.\\w"),
        ("'a\\\\b'", "a\\\\b"),
        ("'ends\\\\'", "ends\\\\"),
        ("''", ""),
        ("'日本語 🎉'", "日本語 🎉"),
        ("'x'' OR ''1''=''1'", "x' OR '1'='1"),
    ],
)
def test_string_escapes(literal: str, value: str) -> None:
    node = parse(f"s = {literal}")
    assert isinstance(node, Comparison)
    assert node.value == value


@pytest.mark.parametrize(
    ("text", "parts"),
    [
        ("attributes.name = 1", ("attributes", "name")),
        ("metadata.`mlflow.modelId` = 1", ("metadata", "mlflow.modelId")),
        ("`weird key` = 1", ("weird key",)),
        ("`a``b` = 1", ("a`b",)),
        ('tags."my key" = 1', ("tags", "my key")),
        ("tags.'my key' = 1", ("tags", "my key")),
        ("tags.null = 1", ("tags", "null")),
        ("`AND` = 1", ("AND",)),
        ("a.b.c = 1", ("a", "b", "c")),
        ("a . b = 1", ("a", "b")),
    ],
)
def test_keys(text: str, parts: tuple[str, ...]) -> None:
    node = parse(text)
    assert isinstance(node, Comparison)
    assert node.key == Key(parts)


# ---------------------------------------------------------------- structure


def test_precedence_not_and_or() -> None:
    a, b, c = cmp("a", "=", 1), cmp("b", "=", 2), cmp("c", "=", 3)
    assert parse("a = 1 OR b = 2 AND c = 3") == Or((a, And((b, c))))
    assert parse("a = 1 AND b = 2 OR c = 3") == Or((And((a, b)), c))
    assert parse("NOT a = 1 AND b = 2") == And((Not(a), b))
    assert parse("NOT a = 1 OR b = 2") == Or((Not(a), b))
    assert parse("NOT NOT a = 1") == Not(Not(a))
    assert parse("a = 1 AND b = 2 AND c = 3") == And((a, b, c))


def test_parentheses() -> None:
    a, b, c = cmp("a", "=", 1), cmp("b", "=", 2), cmp("c", "=", 3)
    assert parse("(a = 1 OR b = 2) AND c = 3") == And((Or((a, b)), c))
    assert parse("NOT (a = 1 AND b = 2)") == Not(And((a, b)))
    assert parse("((a = 1))") == a
    assert parse("(a = 1 AND b = 2) AND c = 3") == And((And((a, b)), c))


def test_keywords_are_case_insensitive() -> None:
    expected = parse("a = 1 AND b IN (1) OR NOT c LIKE 'x' AND d IS NOT NULL AND e = TRUE")
    assert parse("a = 1 and b in (1) Or not c like 'x' aNd d is Not null AND e = True") == expected


def test_empty_is_none() -> None:
    assert parse_filter("") is None
    assert parse_filter("  \n\t ") is None


# ---------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a = 1 OR OR b = 2", "unexpected token 'OR' at position 9"),
        ("a = 'abc", "unterminated string starting at position 4"),
        ("a = 1 AND", "unexpected end of filter at position 9"),
        ("a = 1 b = 2", "unexpected token 'b' at position 6"),
        ("(a = 1", "unexpected end of filter at position 6"),
        ("a = 1)", "unexpected token ')' at position 5"),
        ("a = NULL", "use IS NULL"),
        ("a IS 1", "unexpected token '1' at position 5"),
        ("a NOT = 1", "unexpected token '=' at position 6"),
        ("a LIKE 5", "a string pattern after LIKE"),
        ("a IN ()", "unexpected token ')' at position 6"),
        ("a IN 1", "unexpected token '1' at position 5"),
        ("a IN (1,)", "unexpected token ')' at position 8"),
        ("= 1", "unexpected token '=' at position 0"),
        ("AND = 1", "unexpected token 'AND' at position 0"),
        ("a b", "unexpected token 'b' at position 2"),
        ("a = 1; DROP TABLE x", "unexpected character ';' at position 5"),
        ("`abc = 1", "unterminated quoted key starting at position 0"),
        ("a.`` = 1", "empty key segment at position 2"),
        ("a. = 1", "unexpected token '=' at position 3"),
        ("a = 1abc", "invalid number '1abc' at position 4"),
        ("a = 1.2.3", "invalid number '1.2.3' at position 4"),
        ("a = 1e999", "out of range"),
        ("a = !1", "unexpected character '!' at position 4"),
        ("a = -", "unexpected character '-' at position 4"),
        ("a = 'x\x00'", "NUL character at position 6"),
        ("a = '\ud800'", "invalid character at position 5"),
        ("a = " + "1" * 200, "longer than 100 characters"),
        ('"a" = 1', "unexpected token '\"a\"' at position 0"),
    ],
)
def test_errors_name_token_and_position(text: str, message: str) -> None:
    assert message in error_of(text).message


# ---------------------------------------------------------------- limits


def test_length_limit() -> None:
    ok = "a = '" + "x" * (MAX_FILTER_LENGTH - 6) + "'"
    assert len(ok) == MAX_FILTER_LENGTH
    parse(ok)
    assert "longer than" in error_of(ok + " ").message


def test_depth_limit() -> None:
    parse("(" * MAX_DEPTH + "a = 1" + ")" * MAX_DEPTH)
    parse("NOT " * MAX_DEPTH + "a = 1")
    assert "nests deeper than 32" in error_of("(" * (MAX_DEPTH + 1) + "a = 1" + ")" * (MAX_DEPTH + 1)).message
    assert "nests deeper" in error_of("NOT " * (MAX_DEPTH + 1) + "a = 1").message
    assert "nests deeper" in error_of("NOT (" * 20 + "a = 1" + ")" * 20).message
    # Far past Python's recursion limit: still an InvalidArgument.
    error_of("(" * 5000)
    error_of("NOT " * 2400)


def test_comparison_limit() -> None:
    parse(" OR ".join(["a = 1"] * MAX_COMPARISONS))
    assert "more than 256 comparisons" in error_of(" OR ".join(["a = 1"] * (MAX_COMPARISONS + 1))).message


def test_in_list_limit() -> None:
    parse("a IN (" + ",".join(["1"] * MAX_IN_ITEMS) + ")")
    too_long = "a IN (" + ",".join(["1"] * (MAX_IN_ITEMS + 1)) + ")"
    assert "IN list longer than 1000" in error_of(too_long).message


# ---------------------------------------------------------------- round trips (hypothesis)

text_chars = st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
segments = st.one_of(
    st.from_regex(r"[A-Za-z_][A-Za-z0-9_]{0,8}", fullmatch=True),
    st.sampled_from(sorted(KEYWORDS)),
    st.text(text_chars, min_size=1, max_size=10),
)
keys = st.lists(segments, min_size=1, max_size=3).map(lambda parts: Key(tuple(parts)))


def spellable(value: str) -> bool:
    try:
        literal_text(value)
    except ValueError:
        return False
    return True


strings = st.text(text_chars, max_size=12).filter(spellable)
scalars = st.one_of(
    strings,
    st.integers(min_value=-(10**80), max_value=10**80),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)


@st.composite
def comparisons(draw: st.DrawFn) -> Comparison:
    key = draw(keys)
    kind = draw(st.sampled_from(["binary", "in", "null", "pattern"]))
    if kind == "binary":
        return Comparison(key, draw(st.sampled_from(["=", "!=", "<", "<=", ">", ">="])), draw(scalars))
    if kind == "in":
        values = tuple(draw(st.lists(scalars, min_size=1, max_size=4)))
        return Comparison(key, draw(st.sampled_from(["IN", "NOT IN"])), values)
    if kind == "null":
        return Comparison(key, draw(st.sampled_from(["IS NULL", "IS NOT NULL"])), None)
    op = draw(st.sampled_from(["LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "RLIKE", "NOT RLIKE"]))
    return Comparison(key, op, draw(strings))


def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    groups = st.lists(children, min_size=2, max_size=4).map(tuple)
    return st.one_of(st.builds(Not, children), groups.map(And), groups.map(Or))


trees = st.recursive(comparisons(), extend, max_leaves=12)


def nesting(node: Node, parent: type | None = None) -> int:
    """The parenthesis/NOT depth ``to_text`` prints for ``node``."""
    if isinstance(node, Comparison):
        return 0
    if isinstance(node, Not):
        return 1 + nesting(node.item, Not)
    own = 1 if parent is not None and (isinstance(node, Or) or parent is not Or) else 0
    return own + max(nesting(item, type(node)) for item in node.items)


@settings(max_examples=400, suppress_health_check=[HealthCheck.too_slow])
@given(trees)
def test_to_text_round_trips(tree: Node) -> None:
    assume(nesting(tree) <= MAX_DEPTH)
    assert parse(to_text(tree)) == tree


@settings(max_examples=300)
@given(st.text())
def test_arbitrary_text_never_crashes(text: str) -> None:
    check_total(text)


FUZZ_TOKENS = [
    "a", "tags", ".", "`x.y`", "`", "'s'", '"d"', "'", '"', "1", "-2.5e3", "-", ".5", "(", ")", ",",
    "AND", "or", "NOT", "IN", "is", "NULL", "LIKE", "ilike", "RLIKE", "TRUE", "false",
    "=", "==", "!=", "<>", "<", "<=", ">", ">=", "!", ";", "\\", "'it''s'", "'\\'", "1e999", "\x00",
]  # fmt: skip


@settings(max_examples=1000)
@given(st.lists(st.sampled_from(FUZZ_TOKENS), max_size=25), st.lists(st.sampled_from(["", " ", "\n"])))
def test_grammar_fuzz_never_crashes(tokens: list[str], gaps: list[str]) -> None:
    text = "".join(tok + (gaps[i % len(gaps)] if gaps else " ") for i, tok in enumerate(tokens))
    check_total(text)


def check_total(text: str) -> None:
    """Either a tree (that prints and parses back to itself) or InvalidArgument; nothing else."""
    try:
        node = parse_filter(text)
    except InvalidArgument as error:
        assert error.reason == "INVALID_FILTER"
        return
    if node is not None:
        assert parse(to_text(node)) == node


@settings(max_examples=50)
@given(st.integers(min_value=MAX_DEPTH + 1, max_value=3000), st.sampled_from(["(", "NOT ", "NOT ("]))
def test_deep_nesting_is_invalid_argument(depth: int, opener: str) -> None:
    text = opener * depth + "a = 1" + ")" * (depth * opener.count("("))
    assume(len(text) <= MAX_FILTER_LENGTH)
    with pytest.raises(InvalidArgument, match="nests deeper"):
        parse_filter(text)
