"""Compile filter trees (``store.query.filters``) to SQLAlchemy boolean expressions.

Each List/Search RPC declares its keys in a ``FilterSpec``: plain columns (``Field``) and
key/value child tables such as tags (``MapField``, keys ``tags.<key>``). Values only ever
reach SQL as bound parameters.

Comparators by kind (a ``Field`` may narrow or widen its set with ``ops``):

* STRING: ``= != IN NOT IN LIKE NOT LIKE ILIKE NOT ILIKE RLIKE NOT RLIKE``; literals must be
  strings. ``=``/``!=``/``IN``/``LIKE``/``RLIKE`` are case-sensitive on every backend,
  ``ILIKE`` is the case-insensitive ``LIKE`` (SQLite folds only ASCII letters; PostgreSQL folds
  per its locale). In ``LIKE``/``ILIKE`` patterns ``%`` is any run, ``_`` any one character
  and a backslash makes the next character literal (``'100\\%'``, ``'a\\_b'``, ``'C:\\\\'``);
  a pattern may not end in a lone backslash. ``RLIKE`` takes a regular expression that
  matches anywhere in the value (it must compile as a Python ``re`` pattern; keep to the
  syntax shared with PostgreSQL's regular expressions).
* INTEGER: ``= != < <= > >= IN NOT IN``; integer literals within 64 bits.
* NUMBER: like INTEGER, integers or decimals.
* TIMESTAMP_MS (epoch milliseconds): like INTEGER; also RFC 3339 strings such as
  ``'2026-01-01T00:00:00Z'`` or ``'2026-01-01T02:00:00.250+02:00'`` (at most millisecond
  precision).
* BOOLEAN: ``= !=`` with ``TRUE``/``FALSE``.
* A nullable field also takes ``IS NULL`` / ``IS NOT NULL``.
* Map keys (``tags.<key>``): the value kind's comparators plus ``IS NULL`` (no such key) and
  ``IS NOT NULL`` (the key is set).

``NOT`` is the exact complement: ``NOT x`` matches precisely the rows ``x`` does not. Every
comparison is true or false, never unknown, because a comparison on a missing value is false:
``note != 'a'`` and ``note NOT IN ('a')`` skip rows whose note is NULL, while
``NOT note = 'a'`` includes them. Likewise ``tags.env != 'prod'`` means "tag ``env`` is set to
something other than ``prod``" and ``NOT tags.env = 'prod'`` also matches rows without the tag.

Errors (unknown key — the message lists the valid ones —, comparator not allowed for a key,
value of the wrong type, bad pattern) are ``InvalidArgument`` with reason ``INVALID_FILTER``.

A spec for a table with tags::

    SPEC = FilterSpec(
        fields=(
            Field(("experiment_id", "attributes.experiment_id"), experiments.c.experiment_id,
                  Kind.INTEGER, coerce=decimal_id),
            Field(("name", "attributes.name", "attribute.name"), experiments.c.name),
            Field(("creation_time", "attributes.creation_time"), experiments.c.creation_time,
                  Kind.TIMESTAMP_MS),
        ),
        maps=(
            MapField(("tags", "tag"), link=experiment_tags.c.experiment_id == experiments.c.experiment_id,
                     key_column=experiment_tags.c.key, value_column=experiment_tags.c.value),
        ),
    )
    stmt = select(experiments)
    if (where := compile_filter(request.filter, SPEC)) is not None:
        stmt = stmt.where(where)
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta, timezone
from enum import Enum
from typing import Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement

from store.errors import InvalidArgument
from store.query.filters import (
    BINARY_OPS,
    IN_OPS,
    NULL_OPS,
    PATTERN_OPS,
    And,
    Comparison,
    Node,
    Not,
    Scalar,
    filter_error,
    key_text,
    literal_text,
    parse_filter,
)

INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1
_OP_ORDER: tuple[str, ...] = ("=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN", "LIKE", "NOT LIKE")
_OP_ORDER += ("ILIKE", "NOT ILIKE", "RLIKE", "NOT RLIKE", "IS NULL", "IS NOT NULL")


class Kind(Enum):
    STRING = "a string"
    INTEGER = "an integer"
    NUMBER = "a number"
    TIMESTAMP_MS = "an integer (epoch milliseconds) or an RFC 3339 timestamp string"
    BOOLEAN = "TRUE or FALSE"


_ORDERED_OPS = BINARY_OPS | IN_OPS
DEFAULT_OPS: dict[Kind, frozenset[str]] = {
    Kind.STRING: frozenset({"=", "!="}) | IN_OPS | PATTERN_OPS,
    Kind.INTEGER: _ORDERED_OPS,
    Kind.NUMBER: _ORDERED_OPS,
    Kind.TIMESTAMP_MS: _ORDERED_OPS,
    Kind.BOOLEAN: frozenset({"=", "!="}),
}

#: Converts or validates one literal before its type is checked (raise ``InvalidArgument``).
Coerce = Callable[[Scalar], Scalar]


@dataclass(frozen=True, eq=False)
class Field:
    """One filterable column, accepted under each spelling in ``names``.

    ``coerce`` runs on each literal first, e.g. to accept experiment ids given as ``'5'``.
    A column with a database enum type should validate its values in ``coerce``.
    """

    names: tuple[str, ...]
    column: ColumnElement[Any]
    kind: Kind = Kind.STRING
    nullable: bool = False
    ops: frozenset[str] | None = None
    coerce: Coerce | None = None

    def allowed_ops(self) -> frozenset[str]:
        if self.ops is not None:
            return self.ops
        return DEFAULT_OPS[self.kind] | (NULL_OPS if self.nullable else frozenset())


@dataclass(frozen=True, eq=False)
class MapField:
    """A key/value child table addressed as ``<prefix>.<key>`` (``tags.env``).

    ``link`` correlates a child row with its parent row (``item_tags.c.item_id ==
    items.c.id``). A comparison compiles to ``EXISTS (SELECT 1 FROM child WHERE link AND
    key_column = :key AND <comparison on value_column>)``; ``IS NOT NULL`` to the same
    ``EXISTS`` without the value comparison and ``IS NULL`` to its ``NOT EXISTS``.
    """

    prefixes: tuple[str, ...]
    link: ColumnElement[bool]
    key_column: ColumnElement[Any]
    value_column: ColumnElement[Any]
    kind: Kind = Kind.STRING
    value_nullable: bool = False
    ops: frozenset[str] | None = None
    coerce: Coerce | None = None

    def allowed_ops(self) -> frozenset[str]:
        return (self.ops if self.ops is not None else DEFAULT_OPS[self.kind]) | NULL_OPS

    def exists(self, key: str, predicate: ColumnElement[bool] | None = None) -> ColumnElement[bool]:
        conditions = [self.link, self.key_column == sa.bindparam(None, key, type_=sa.String())]
        return sa.exists().where(*conditions, *([] if predicate is None else [predicate]))


#: Compiles one comparison on a custom key: (the key after its prefix, or the whole key for an
#: exact name; the comparison) -> a boolean expression that is never NULL.
CustomCompiler = Callable[[str, Comparison], ColumnElement[bool]]


@dataclass(frozen=True, eq=False)
class CustomKey:
    """Keys whose SQL a function builds: exact ``names`` (``trace.text``) or ``<prefix>.<rest>``
    (``span.attributes.<k>``, ``feedback.<name>``). The function should use ``compare`` so
    comparators and literal types are checked like everywhere else."""

    compile: CustomCompiler
    names: tuple[str, ...] = ()
    prefixes: tuple[str, ...] = ()
    doc: str = ""


@dataclass(frozen=True, eq=False)
class FilterSpec:
    """The keys one RPC accepts. Key spellings must not collide."""

    fields: tuple[Field, ...] = ()
    maps: tuple[MapField, ...] = ()
    custom: tuple[CustomKey, ...] = ()
    _fields: dict[str, Field] = field(init=False, repr=False)
    _maps: dict[str, MapField] = field(init=False, repr=False)
    _custom_names: dict[str, CustomKey] = field(init=False, repr=False)
    _custom_prefixes: dict[str, CustomKey] = field(init=False, repr=False)

    def __post_init__(self) -> None:
        fields = {name: f for f in self.fields for name in f.names}
        maps = {prefix: m for m in self.maps for prefix in m.prefixes}
        names = {name: c for c in self.custom for name in c.names}
        prefixes = {prefix: c for c in self.custom for prefix in c.prefixes}
        declared = sum(len(f.names) for f in self.fields) + sum(len(m.prefixes) for m in self.maps)
        declared += sum(len(c.names) + len(c.prefixes) for c in self.custom)
        if len(fields) + len(maps) + len(names) + len(prefixes) != declared or set(fields) & set(names):
            raise ValueError("FilterSpec: a key spelling is declared twice")
        object.__setattr__(self, "_fields", fields)
        object.__setattr__(self, "_maps", maps)
        object.__setattr__(self, "_custom_names", names)
        object.__setattr__(self, "_custom_prefixes", prefixes)

    def valid_keys(self) -> list[str]:
        keys = [f.names[0] for f in self.fields] + [f"{m.prefixes[0]}.<key>" for m in self.maps]
        return keys + [c.doc or (c.names[0] if c.names else f"{c.prefixes[0]}.<key>") for c in self.custom]


@dataclass(frozen=True, eq=False)
class _Target:
    """What a comparison is about: a column with its kind, as a Field or a map value."""

    name: str
    column: ColumnElement[Any]
    kind: Kind
    nullable: bool
    ops: frozenset[str]
    coerce: Coerce | None


def compile_filter(text: str, spec: FilterSpec) -> ColumnElement[bool] | None:
    """Parse and compile ``text``; ``None`` when it is empty (no restriction)."""
    node = parse_filter(text)
    return None if node is None else compile_node(node, spec)


def compile_node(node: Node, spec: FilterSpec) -> ColumnElement[bool]:
    """Compile a parsed tree against ``spec``."""
    if isinstance(node, Comparison):
        return _comparison(node, spec)
    if isinstance(node, Not):
        return sa.not_(compile_node(node.item, spec))
    parts = [compile_node(item, spec) for item in node.items]
    return sa.and_(*parts) if isinstance(node, And) else sa.or_(*parts)


def _comparison(cmp: Comparison, spec: FilterSpec) -> ColumnElement[bool]:
    name = key_text(cmp.key)
    if (f := spec._fields.get(cmp.key.dotted)) is not None:
        target = _Target(name, f.column, f.kind, f.nullable, f.allowed_ops(), f.coerce)
        _check_op(target, cmp)
        if cmp.op in NULL_OPS:
            return f.column.is_(None) if cmp.op == "IS NULL" else f.column.is_not(None)
        return _predicate(target, cmp)
    if (c := spec._custom_names.get(cmp.key.dotted)) is not None:
        return c.compile(cmp.key.dotted, cmp)
    if len(cmp.key.parts) > 1 and (c := spec._custom_prefixes.get(cmp.key.parts[0])) is not None:
        return c.compile(".".join(cmp.key.parts[1:]), cmp)
    if len(cmp.key.parts) > 1 and (m := spec._maps.get(cmp.key.parts[0])) is not None:
        target = _Target(name, m.value_column, m.kind, m.value_nullable, m.allowed_ops(), m.coerce)
        _check_op(target, cmp)
        subkey = ".".join(cmp.key.parts[1:])
        if cmp.op in NULL_OPS:
            return sa.not_(m.exists(subkey)) if cmp.op == "IS NULL" else m.exists(subkey)
        return m.exists(subkey, _predicate(target, cmp))
    message = f"unknown key {name!r} at position {cmp.position}; valid keys: {', '.join(spec.valid_keys())}"
    error = filter_error(message)
    raise InvalidArgument(error.reason, message, error.violations, {"key": cmp.key.dotted})


def compare(
    column: ColumnElement[Any],
    cmp: Comparison,
    *,
    kind: Kind = Kind.STRING,
    nullable: bool = False,
    ops: frozenset[str] | None = None,
    coerce: Coerce | None = None,
) -> ColumnElement[bool]:
    """``cmp`` applied to ``column``, with the usual comparator and literal-type checks.

    For custom keys. ``IS NULL``/``IS NOT NULL`` are the caller's (they usually mean "no such
    child row"); here they are refused unless ``ops`` allows them.
    """
    allowed = ops if ops is not None else DEFAULT_OPS[kind]
    target = _Target(key_text(cmp.key), column, kind, nullable, allowed, coerce)
    _check_op(target, cmp)
    if cmp.op in NULL_OPS:
        return column.is_(None) if cmp.op == "IS NULL" else column.is_not(None)
    return _predicate(target, cmp)


def refuse(cmp: Comparison, reason: str) -> InvalidArgument:
    """The INVALID_FILTER error for a comparison a custom key cannot express."""
    return filter_error(f"key {key_text(cmp.key)!r} at position {cmp.position}: {reason}")


def _check_op(target: _Target, cmp: Comparison) -> None:
    if cmp.op not in target.ops:
        allowed = ", ".join(op for op in _OP_ORDER if op in target.ops)
        raise filter_error(
            f"comparator {cmp.op} is not allowed for key {target.name!r} at position {cmp.position}"
            f" (allowed: {allowed})"
        )


_BUILDERS: dict[str, Callable[[ColumnElement[Any], Any], ColumnElement[bool]]] = {
    "=": lambda c, v: c == v,
    "!=": lambda c, v: c != v,
    "<": lambda c, v: c < v,
    "<=": lambda c, v: c <= v,
    ">": lambda c, v: c > v,
    ">=": lambda c, v: c >= v,
    "IN": lambda c, v: c.in_(v),
    "NOT IN": lambda c, v: c.not_in(v),
    "LIKE": lambda c, v: c.like(v, escape="\\"),
    "NOT LIKE": lambda c, v: c.not_like(v, escape="\\"),
    "ILIKE": lambda c, v: c.ilike(v, escape="\\"),
    "NOT ILIKE": lambda c, v: c.not_ilike(v, escape="\\"),
    "RLIKE": lambda c, v: c.regexp_match(v),
    "NOT RLIKE": lambda c, v: sa.not_(c.regexp_match(v)),
}


def _predicate(target: _Target, cmp: Comparison) -> ColumnElement[bool]:
    """The comparison on ``target.column``, false (never NULL) where the column is NULL."""
    if cmp.op in PATTERN_OPS:
        if target.kind is not Kind.STRING or not isinstance(cmp.value, str):
            raise filter_error(f"{cmp.op} needs a string key and pattern (at position {cmp.position})")
        _check_pattern(cmp)
        value: Any = sa.bindparam(None, cmp.value, type_=sa.String())
    elif isinstance(cmp.value, tuple):
        value = [_bind(target, _convert(target, v, cmp.position)) for v in cmp.value]
    else:
        assert cmp.value is not None
        value = _bind(target, _convert(target, cmp.value, cmp.position))
    expr = _BUILDERS[cmp.op](target.column, value)
    return sa.and_(target.column.is_not(None), expr) if target.nullable else expr


def _check_pattern(cmp: Comparison) -> None:
    pattern = str(cmp.value)
    if cmp.op.endswith("RLIKE"):
        try:
            re.compile(pattern)
        except (re.error, RecursionError, OverflowError) as exc:
            raise filter_error(f"invalid regular expression at position {cmp.position}: {exc}") from None
    elif (len(pattern) - len(pattern.rstrip("\\"))) % 2:
        raise filter_error(f"LIKE pattern at position {cmp.position} ends with a lone backslash")


def _bind(target: _Target, value: Scalar) -> ColumnElement[Any]:
    if isinstance(value, bool):
        type_: Any = sa.Boolean()
    elif isinstance(value, int):
        type_ = sa.BigInteger()
    elif isinstance(value, float):
        type_ = sa.Float()
    else:
        type_ = target.column.type if isinstance(target.column.type, sa.String) else sa.String()
    return sa.bindparam(None, value, type_=type_)


def _describe(value: Scalar) -> str:
    kind = "boolean" if isinstance(value, bool) else "string" if isinstance(value, str) else "number"
    return f"{kind} {literal_text(value) if not isinstance(value, str) else repr(value)}"


def _convert(target: _Target, value: Scalar, position: int) -> Scalar:
    """Check (and for timestamps convert) one literal against the target's kind."""
    if target.coerce is not None:
        value = target.coerce(value)
    kind = target.kind
    if kind is Kind.TIMESTAMP_MS and isinstance(value, str):
        try:
            return rfc3339_to_ms(value)
        except ValueError as exc:
            raise filter_error(f"key {target.name!r} at position {position}: {exc}") from None
    number = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not (
        (kind is Kind.STRING and isinstance(value, str))
        or (kind is Kind.BOOLEAN and isinstance(value, bool))
        or (kind is Kind.NUMBER and number)
        or (kind in (Kind.INTEGER, Kind.TIMESTAMP_MS) and number and isinstance(value, int))
    ):
        got = _describe(value)
        raise filter_error(f"key {target.name!r} at position {position} expects {kind.value}, got {got}")
    if number and isinstance(value, int) and not INT64_MIN <= value <= INT64_MAX:
        raise filter_error(f"integer {value} at position {position} does not fit in 64 bits")
    return value


_RFC3339 = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:([Zz])|([+-])(\d{2}):(\d{2}))",
    re.ASCII,
)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def rfc3339_to_ms(text: str) -> int:
    """Epoch milliseconds of an RFC 3339 timestamp; ``ValueError`` if it is not one."""
    m = _RFC3339.fullmatch(text)
    if m is None:
        raise ValueError(f"{text[:64]!r} is not an RFC 3339 timestamp (e.g. '2026-01-01T00:00:00Z')")
    fraction = m[7] or ""
    if fraction[3:].strip("0"):
        raise ValueError(f"timestamp {text!r} is more precise than a millisecond")
    try:
        offset = timedelta(hours=int(m[10] or 0), minutes=int(m[11] or 0)) * (-1 if m[9] == "-" else 1)
        year, month, day, hour, minute, second = (int(m[i]) for i in range(1, 7))
        instant = datetime(year, month, day, hour, minute, second, tzinfo=timezone(offset))
    except ValueError as exc:
        raise ValueError(f"invalid timestamp {text!r}: {exc}") from None
    return (instant - _EPOCH) // timedelta(milliseconds=1) + int(fraction[:3].ljust(3, "0"))
