"""The filter language of every List/Search RPC: lexer, parser and typed tree (SPEC §1.6).

The syntax is MLflow's search syntax plus ``OR``, ``NOT`` and parentheses::

    expr       := and_expr (OR and_expr)*
    and_expr   := not_expr (AND not_expr)*
    not_expr   := NOT not_expr | '(' expr ')' | comparison
    comparison := key op literal
                | key [NOT] IN '(' literal (',' literal)* ')'
                | key IS [NOT] NULL
                | key [NOT] (LIKE | ILIKE | RLIKE) string
    op         := '=' | '==' | '!=' | '<>' | '<' | '<=' | '>' | '>='

Precedence is ``NOT`` > ``AND`` > ``OR``; keywords are case-insensitive.

Keys are dot-separated segments: a bare identifier ``[A-Za-z_][A-Za-z0-9_]*`` or a
backtick-quoted one (a literal backtick is written twice), so ``metadata.`mlflow.modelId` ``
is the two segments ``metadata`` and ``mlflow.modelId``. After the first segment a quoted
string also works: ``tags."my key"``. A keyword (``AND``, ``NULL``…) used as the first segment
must be backtick-quoted. Which keys exist, and which comparators and value types each accepts,
is documented per RPC.

Literals: strings in ``'single'`` or ``"double"`` quotes, in which the quote character is
written twice or preceded by a backslash; any other backslash stays in the value as written
(``'\\d+'`` is the regex ``\\d+``; a pair of backslashes is kept as two, as in MLflow). So a
value cannot end in a single backslash; match it with ``LIKE``, where ``\\\\`` stands for one
backslash (``path LIKE 'C:\\\\'`` matches ``C:\\``). Numbers are integers or decimals with an
optional exponent and an optional leading ``-``; ``TRUE``/``FALSE`` are booleans. There is no
NULL literal: write ``key IS NULL``.

``parse_filter`` returns a tree of frozen dataclasses (``Comparison``, ``And``, ``Or``,
``Not``); ``to_text`` prints a tree back as canonical filter text.

Limits: filter text ≤ 10,000 characters, nesting (parentheses and ``NOT``) ≤ 32 levels,
≤ 256 comparisons, ≤ 1,000 values per ``IN`` list. Every malformed input, including any
limit, is ``InvalidArgument`` with reason ``INVALID_FILTER`` and a message naming the
offending token and its 0-based character position.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field

from store.errors import FieldViolation, InvalidArgument

MAX_FILTER_LENGTH = 10_000
MAX_DEPTH = 32
MAX_COMPARISONS = 256
MAX_IN_ITEMS = 1_000
MAX_NUMBER_LENGTH = 100

Scalar = str | int | float | bool
Value = Scalar | tuple[Scalar, ...] | None

#: Every comparator a ``Comparison`` can carry (``==`` and ``<>`` are normalized away).
BINARY_OPS = frozenset({"=", "!=", "<", "<=", ">", ">="})
PATTERN_OPS = frozenset({"LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "RLIKE", "NOT RLIKE"})
IN_OPS = frozenset({"IN", "NOT IN"})
NULL_OPS = frozenset({"IS NULL", "IS NOT NULL"})
ALL_OPS = BINARY_OPS | PATTERN_OPS | IN_OPS | NULL_OPS

KEYWORDS = frozenset({"AND", "OR", "NOT", "IN", "IS", "NULL", "LIKE", "ILIKE", "RLIKE", "TRUE", "FALSE"})
_OP_ALIASES = {"==": "=", "<>": "!="}
_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_NUMBER = re.compile(r"-?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?", re.ASCII)
_INTEGER = re.compile(r"-?\d+", re.ASCII)
_DIGITS = frozenset("0123456789")
_BAD_NUMBER = re.compile(r"[\w.+-]+")
_OPERATOR = re.compile(r"==|!=|<>|<=|>=|=|<|>")


@dataclass(frozen=True, slots=True)
class Key:
    """A key as its segments: ``tags.`a.b` `` is ``("tags", "a.b")``."""

    parts: tuple[str, ...]

    @property
    def dotted(self) -> str:
        """The segments joined by dots (backticks only group; they do not survive)."""
        return ".".join(self.parts)


@dataclass(frozen=True, slots=True)
class Comparison:
    """``key op value``; ``value`` is a tuple for IN, ``None`` for IS [NOT] NULL."""

    key: Key
    op: str
    value: Value
    position: int = field(default=0, compare=False)


@dataclass(frozen=True, slots=True)
class And:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Or:
    items: tuple[Node, ...]


@dataclass(frozen=True, slots=True)
class Not:
    item: Node


Node = Comparison | And | Or | Not


def filter_error(message: str) -> InvalidArgument:
    """The one error of this language (also used by ``filter_sql``)."""
    return InvalidArgument("INVALID_FILTER", message, [FieldViolation("filter", message)])


# ---------------------------------------------------------------- lexer


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # IDENT BACKTICK STRING NUMBER OP ( ) , . EOF
    text: str  # the source text
    pos: int
    value: Scalar = ""  # decoded value of STRING, BACKTICK and NUMBER tokens

    def shown(self) -> str:
        return "end of filter" if self.kind == "EOF" else f"token {_clip(self.text)!r}"

    def keyword(self) -> str | None:
        up = self.text.upper()
        return up if self.kind == "IDENT" and up in KEYWORDS else None


def _clip(text: str, limit: int = 40) -> str:
    return text if len(text) <= limit else text[:limit] + "…"


def _read_quoted(text: str, start: int) -> tuple[str, int]:
    """Decode the string or backtick key whose quote is at ``start``: (value, index after it)."""
    quote, i, out = text[start], start + 1, list[str]()
    escapes = (quote * 2,) if quote == "`" else (quote * 2, "\\" + quote)
    while i < len(text):
        pair = text[i : i + 2]
        if pair in escapes or (pair == "\\\\" and quote != "`"):
            out.append(quote if pair in escapes else pair)
            i += 2
        elif text[i] == quote:
            return "".join(out), i + 1
        else:
            out.append(text[i])
            i += 1
    what = "quoted key" if quote == "`" else "string"
    raise filter_error(f"unterminated {what} starting at position {start}")


def _number_token(text: str, pos: int, match: re.Match[str]) -> Token:
    raw = match.group()
    end = match.end()
    if end < len(text) and (text[end].isalnum() or text[end] in "_."):
        bad = _BAD_NUMBER.match(text, pos)
        raise filter_error(f"invalid number {_clip(bad.group() if bad else raw)!r} at position {pos}")
    if len(raw) > MAX_NUMBER_LENGTH:
        raise filter_error(f"number at position {pos} is longer than {MAX_NUMBER_LENGTH} characters")
    if _INTEGER.fullmatch(raw):
        return Token("NUMBER", raw, pos, int(raw))
    number = float(raw)
    if not math.isfinite(number):
        raise filter_error(f"number {_clip(raw)!r} at position {pos} is out of range")
    return Token("NUMBER", raw, pos, number)


def _next_token(text: str, i: int) -> Token:
    ch = text[i]
    if ch in "()," or (ch == "." and text[i + 1 : i + 2] not in _DIGITS):
        return Token(ch, ch, i)
    if ch in "'\"`":
        value, end = _read_quoted(text, i)
        return Token("BACKTICK" if ch == "`" else "STRING", text[i:end], i, value)
    if m := _IDENT.match(text, i):
        return Token("IDENT", m.group(), i)
    if m := _NUMBER.match(text, i):
        return _number_token(text, i, m)
    if m := _OPERATOR.match(text, i):
        return Token("OP", m.group(), i)
    raise filter_error(f"unexpected character {ch!r} at position {i}")


def tokenize(text: str) -> list[Token]:
    """Split ``text`` into tokens, ending with an ``EOF`` token."""
    tokens, i = [], 0
    while i < len(text):
        if text[i].isspace():
            i += 1
            continue
        token = _next_token(text, i)
        tokens.append(token)
        i = token.pos + len(token.text)
    tokens.append(Token("EOF", "", len(text)))
    return tokens


# ---------------------------------------------------------------- parser


class _Parser:
    def __init__(self, tokens: list[Token]) -> None:
        self.tokens = tokens
        self.i = 0
        self.depth = 0
        self.comparisons = 0

    @property
    def tok(self) -> Token:
        return self.tokens[self.i]

    def advance(self) -> Token:
        token = self.tokens[self.i]
        self.i = min(self.i + 1, len(self.tokens) - 1)
        return token

    def error(self, expected: str) -> InvalidArgument:
        token = self.tok
        return filter_error(f"unexpected {token.shown()} at position {token.pos} (expected {expected})")

    def accept(self, keyword: str) -> bool:
        if self.tok.keyword() == keyword:
            self.advance()
            return True
        return False

    def expect(self, kind: str, expected: str) -> Token:
        if self.tok.kind != kind:
            raise self.error(expected)
        return self.advance()

    def parse(self) -> Node:
        node = self.expr()
        if self.tok.kind != "EOF":
            raise self.error("AND, OR or end of filter")
        return node

    def expr(self) -> Node:
        items = [self.and_expr()]
        while self.accept("OR"):
            items.append(self.and_expr())
        return items[0] if len(items) == 1 else Or(tuple(items))

    def and_expr(self) -> Node:
        items = [self.not_expr()]
        while self.accept("AND"):
            items.append(self.not_expr())
        return items[0] if len(items) == 1 else And(tuple(items))

    def not_expr(self) -> Node:
        start = self.tok
        if start.keyword() == "NOT" or start.kind == "(":
            self.depth += 1
            if self.depth > MAX_DEPTH:
                raise filter_error(f"filter nests deeper than {MAX_DEPTH} levels at position {start.pos}")
            self.advance()
            if start.kind == "(":
                node: Node = self.expr()
                self.expect(")", "')'")
            else:
                node = Not(self.not_expr())
            self.depth -= 1
            return node
        return self.comparison()

    def key(self) -> Key:
        first = self.tok
        if first.kind == "BACKTICK" or (first.kind == "IDENT" and first.keyword() is None):
            parts = [self._segment(self.advance())]
        else:
            raise self.error("a key")
        while self.tok.kind == ".":
            self.advance()
            if self.tok.kind not in ("IDENT", "BACKTICK", "STRING"):
                raise self.error("a key segment after '.'")
            parts.append(self._segment(self.advance()))
        return Key(tuple(parts))

    @staticmethod
    def _segment(token: Token) -> str:
        value = token.text if token.kind == "IDENT" else str(token.value)
        if not value:
            raise filter_error(f"empty key segment at position {token.pos}")
        return value

    def comparison(self) -> Comparison:
        pos = self.tok.pos
        self.comparisons += 1
        if self.comparisons > MAX_COMPARISONS:
            raise filter_error(f"more than {MAX_COMPARISONS} comparisons (at position {pos})")
        key = self.key()
        if self.tok.kind == "OP":
            op = self.advance().text
            return Comparison(key, _OP_ALIASES.get(op, op), self.literal(), pos)
        if self.accept("IS"):
            op = "IS NOT NULL" if self.accept("NOT") else "IS NULL"
            if not self.accept("NULL"):
                raise self.error("NULL")
            return Comparison(key, op, None, pos)
        negated = self.accept("NOT")
        word = self.tok.keyword()
        if word == "IN":
            self.advance()
            return Comparison(key, "NOT IN" if negated else "IN", self.in_list(), pos)
        if word in ("LIKE", "ILIKE", "RLIKE"):
            self.advance()
            if self.tok.kind != "STRING":
                raise self.error(f"a string pattern after {word}")
            return Comparison(key, f"NOT {word}" if negated else str(word), self.advance().value, pos)
        raise self.error("IN, LIKE, ILIKE or RLIKE after NOT" if negated else "a comparison operator")

    def literal(self) -> Scalar:
        token = self.tok
        if token.kind in ("STRING", "NUMBER"):
            return self.advance().value
        if token.keyword() in ("TRUE", "FALSE"):
            return self.advance().keyword() == "TRUE"
        if token.keyword() == "NULL":
            raise self.error("a literal; use IS NULL / IS NOT NULL")
        raise self.error("a string, number, TRUE or FALSE")

    def in_list(self) -> tuple[Scalar, ...]:
        self.expect("(", "'(' after IN")
        items = [self.literal()]
        while self.tok.kind == ",":
            comma = self.advance()
            if len(items) >= MAX_IN_ITEMS:
                raise filter_error(f"IN list longer than {MAX_IN_ITEMS} values at position {comma.pos}")
            items.append(self.literal())
        self.expect(")", "',' or ')'")
        return tuple(items)


def _check_text(text: str) -> None:
    if len(text) > MAX_FILTER_LENGTH:
        raise filter_error(f"filter is longer than {MAX_FILTER_LENGTH} characters ({len(text)})")
    if (nul := text.find("\x00")) >= 0:
        raise filter_error(f"NUL character at position {nul}")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise filter_error(f"invalid character at position {exc.start}") from None


def parse_filter(text: str) -> Node | None:
    """Parse ``text`` into a tree; ``None`` when it is empty or only whitespace."""
    _check_text(text)
    if not text.strip():
        return None
    return _Parser(tokenize(text)).parse()


# ---------------------------------------------------------------- printer


def _quote_segment(segment: str, first: bool) -> str:
    bare = _IDENT.fullmatch(segment) and not (first and segment.upper() in KEYWORDS)
    return segment if bare else "`" + segment.replace("`", "``") + "`"


def key_text(key: Key) -> str:
    """The canonical spelling of a key (backticks only where needed)."""
    return ".".join(_quote_segment(part, i == 0) for i, part in enumerate(key.parts))


def _has_spelling(value: str, quote: str) -> bool:
    """False when an odd run of backslashes precedes ``quote`` or the end of ``value``."""
    return re.search(r"(?<!\\)(?:\\\\)*\\(?:" + quote + r"|\Z)", value) is None


def literal_text(value: Scalar) -> str:
    """The canonical spelling of a literal (strings in single quotes, quotes doubled).

    Raises ``ValueError`` for the strings this language cannot spell (see ``to_text``).
    """
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, (int, float)):
        return repr(value)
    for quote in "'\"":
        if _has_spelling(value, quote):
            return quote + value.replace(quote, quote * 2) + quote
    raise ValueError(f"string {value!r} has no spelling in the filter language")


def _child_text(node: Node, parent: type[Node]) -> str:
    text = to_text(node)
    needs_parens = isinstance(node, Or) or (isinstance(node, And) and parent is not Or)
    return f"({text})" if needs_parens else text


def to_text(node: Node) -> str:
    """Print ``node`` as a filter that ``parse_filter`` turns back into an equal tree.

    A string value that ends in an odd number of backslashes, or in which odd runs of
    backslashes precede both a ``'`` and a ``"``, has no spelling (``ValueError``); to match
    such a value use ``LIKE``, where ``\\\\`` stands for one backslash.
    """
    if isinstance(node, Comparison):
        key = key_text(node.key)
        if node.op in NULL_OPS:
            return f"{key} {node.op}"
        if isinstance(node.value, tuple):
            return f"{key} {node.op} ({', '.join(literal_text(v) for v in node.value)})"
        assert node.value is not None
        return f"{key} {node.op} {literal_text(node.value)}"
    if isinstance(node, Not):
        return f"NOT {_child_text(node.item, Not)}"
    word = " AND " if isinstance(node, And) else " OR "
    return word.join(_child_text(item, type(node)) for item in node.items)
