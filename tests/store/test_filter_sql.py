"""compile_filter and keyset paging on real SQLite and PostgreSQL databases (a toy schema).

The module builds its own ``items``/``item_tags`` tables (SQLAlchemy Core) in a SQLite file and
in a uniquely named PostgreSQL database (``MLGENAI_TEST_DATABASE_URL``, default the local
server), and checks every filter against the ids a plain Python evaluation expects.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import permutations
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings, strategies as st
from sqlalchemy.engine import Engine, make_url

from store.engine import make_admin_engine, make_engine
from store.errors import FieldViolation, InvalidArgument
from store.query.filter_sql import Field, FilterSpec, Kind, MapField, compile_filter
from store.query.filters import And, Comparison, Key, Node, Not, Or, Scalar, literal_text, to_text
from store.query.keyset import (
    OrderKey,
    OrderSpec,
    PageTokenCodec,
    binding_of,
    fetch_page,
    order_text,
    parse_order_by,
    row_values,
)

PG_URL = os.environ.get("MLGENAI_TEST_DATABASE_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")

metadata = sa.MetaData()
items = sa.Table(
    "items",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("n", sa.Integer, nullable=False),
    sa.Column("score", sa.Float, nullable=True),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("note", sa.String(200), nullable=True),
    sa.Column("flag", sa.Boolean, nullable=False),
)
item_tags = sa.Table(
    "item_tags",
    metadata,
    sa.Column("item_id", sa.Integer, sa.ForeignKey("items.id"), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.String(8000), nullable=False),
)


def coerce_id(value: Scalar) -> Scalar:
    """Ids may be given as decimal strings, as experiment ids are."""
    if isinstance(value, str):
        if not re.fullmatch(r"[0-9]{1,18}", value):
            message = f"id must be a decimal integer, got {value!r}"
            raise InvalidArgument("INVALID_FILTER", message, [FieldViolation("filter", message)])
        return int(value)
    return value


SPEC = FilterSpec(
    fields=(
        Field(("id", "attributes.id"), items.c.id, Kind.INTEGER, coerce=coerce_id),
        Field(("name", "attributes.name", "attribute.name"), items.c.name),
        Field(("n",), items.c.n, Kind.INTEGER),
        Field(("score",), items.c.score, Kind.NUMBER, nullable=True),
        Field(("created", "created_ms"), items.c.created_ms, Kind.TIMESTAMP_MS),
        Field(("note",), items.c.note, nullable=True),
        Field(("flag",), items.c.flag, Kind.BOOLEAN),
    ),
    maps=(
        MapField(
            prefixes=("tags", "tag"),
            link=item_tags.c.item_id == items.c.id,
            key_column=item_tags.c.key,
            value_column=item_tags.c.value,
        ),
    ),
)

# ---------------------------------------------------------------- data

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
BASE_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z
DAY_MS = 86_400_000
NAMES = [
    "Abc", "abc", "ABC", "Abcdef", "abcdef", "xyz", "Xyz", "Ünïcode", "ünïcode", "日本語",
    "emoji 🎉", "with space", "per%cent", "under_score", "back\\slash", "quote'single", 'dq"double',
    "x' OR '1'='1", "C:\\", "Abc", "b", "Zeta", "zeta", "alpha.beta", "a_c", "abc%", "line\nbreak",
    "café", "ß", "Ωmega",
]  # fmt: skip
ENVS = ["prod", "dev", "Prod", "staging"]


@dataclass(frozen=True)
class Item:
    id: int
    name: str
    n: int
    score: float | None
    created_ms: int
    note: str | None
    flag: bool
    tags: dict[str, str] = field(default_factory=dict)


def make_items() -> list[Item]:
    rows = []
    for i, name in enumerate(NAMES, start=1):
        tags = {}
        if i % 3 != 0:
            tags["env"] = ENVS[i % 4]
        if i % 5 == 0:
            tags["team.name"] = "ml" if i % 2 else "Ops"
        if i % 7 == 0:
            tags["my key"] = "ünï ✓"
        if i % 4 == 0:
            tags["empty"] = ""
        note = None if i % 3 == 0 else f"{'note' if i % 3 == 1 else 'NOTE'}-{'AB'[i % 2]}{i % 5}"
        score = None if i % 4 == 0 else i * 0.5 - 3
        created = BASE_MS + (i % 10) * DAY_MS + i % 3
        rows.append(Item(i, name, i % 7, score, created, note, i % 2 == 0, tags))
    return rows


ROWS = make_items()
TAG_COUNT = sum(len(r.tags) for r in ROWS)


@dataclass
class Toy:
    backend: str
    engine: Engine
    rows: list[Item]

    def ids(self, text: str) -> list[int]:
        expr = compile_filter(text, SPEC)
        stmt = sa.select(items.c.id).order_by(items.c.id)
        with self.engine.connect() as conn:
            return list(conn.execute(stmt if expr is None else stmt.where(expr)).scalars())

    def expect(self, predicate: Callable[[Item], bool]) -> list[int]:
        return [r.id for r in self.rows if predicate(r)]

    def counts(self) -> tuple[int, int]:
        with self.engine.connect() as conn:
            count = sa.select(sa.func.count())
            return (
                conn.execute(count.select_from(items)).scalar_one(),
                conn.execute(count.select_from(item_tags)).scalar_one(),
            )


def populate(engine: Engine) -> None:
    metadata.create_all(engine)
    with engine.begin() as conn:
        conn.execute(items.insert(), [{k: v for k, v in vars(r).items() if k != "tags"} for r in ROWS])
        tags = [{"item_id": r.id, "key": k, "value": v} for r in ROWS for k, v in r.tags.items()]
        conn.execute(item_tags.insert(), tags)


def postgres_engine() -> Iterator[Engine]:
    name = f"mlgenai_filter_sql_{uuid.uuid4().hex[:12]}"
    admin = make_admin_engine(PG_URL)
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine = make_engine(make_url(PG_URL).set(database=name), pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def sqlite_engine(path: str) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{path}", pool_size=2)
    try:
        yield engine
    finally:
        engine.dispose()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def toy(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Toy]:
    backend: str = request.param
    if backend not in getattr(request.config, "backends", [backend]):
        pytest.skip(f"{backend} not selected (--db)")
    engines = (
        sqlite_engine(str(tmp_path_factory.mktemp("filter_sql") / "toy.db"))
        if backend == "sqlite"
        else postgres_engine()
    )
    for engine in engines:
        populate(engine)
        yield Toy(backend, engine, ROWS)


# ---------------------------------------------------------------- comparators

Case = tuple[str, Callable[[Item], bool]]


def ascii_lower(text: str) -> str:
    return "".join(c.lower() if c.isascii() else c for c in text)


def at(day: int, ms: int = 0) -> int:
    return BASE_MS + day * DAY_MS + ms


def _abc_case(r: Item) -> bool:
    return r.name.lower() == "abc" and ((r.score is not None and r.score > 0) or "env" not in r.tags)


CASES: list[Case] = [
    ("name = 'Abc'", lambda r: r.name == "Abc"),
    ("name == 'abc'", lambda r: r.name == "abc"),
    ("attributes.name = 'ABC'", lambda r: r.name == "ABC"),
    ("attribute.name != 'Abc'", lambda r: r.name != "Abc"),
    ("name <> 'abc'", lambda r: r.name != "abc"),
    ("name IN ('Abc', 'xyz', 'nope')", lambda r: r.name in ("Abc", "xyz")),
    ("name NOT IN ('Abc', 'xyz')", lambda r: r.name not in ("Abc", "xyz")),
    ("name LIKE 'Abc%'", lambda r: r.name.startswith("Abc")),
    ("name LIKE 'abc%'", lambda r: r.name.startswith("abc")),
    ("name NOT LIKE 'abc%'", lambda r: not r.name.startswith("abc")),
    ("name ILIKE 'abc%'", lambda r: r.name.lower().startswith("abc")),
    ("name NOT ILIKE 'ABC%'", lambda r: not r.name.lower().startswith("abc")),
    ("name LIKE 'a_c'", lambda r: len(r.name) == 3 and r.name[0] == "a" and r.name[2] == "c"),
    ("name LIKE '%\\%%'", lambda r: "%" in r.name),
    ("name LIKE '%\\_%'", lambda r: "_" in r.name),
    ("name LIKE 'C:\\\\'", lambda r: r.name == "C:\\"),
    ("name LIKE '%''%'", lambda r: "'" in r.name),
    ("name LIKE 'line%break'", lambda r: r.name == "line\nbreak"),
    ("name ILIKE '%é'", lambda r: r.name.endswith("é")),
    ("name = '日本語'", lambda r: r.name == "日本語"),
    ("name = 'back\\slash'", lambda r: r.name == "back\\slash"),
    ("name RLIKE '^[AXZ]'", lambda r: r.name[0] in "AXZ"),
    ("name NOT RLIKE 'c$'", lambda r: not r.name.endswith("c")),
    ("name RLIKE 'Ü|ü'", lambda r: "ü" in r.name.lower()),
    ("name RLIKE '\\d|\\s'", lambda r: bool(re.search(r"\d|\s", r.name))),
    ("n = 3", lambda r: r.n == 3),
    ("n != 3", lambda r: r.n != 3),
    ("n < 3", lambda r: r.n < 3),
    ("n <= 3", lambda r: r.n <= 3),
    ("n > 3", lambda r: r.n > 3),
    ("n >= 3", lambda r: r.n >= 3),
    ("n IN (1, 2)", lambda r: r.n in (1, 2)),
    ("n NOT IN (1, 2)", lambda r: r.n not in (1, 2)),
    ("n > -1", lambda r: True),
    ("n = 9223372036854775807", lambda r: False),
    ("score > 0", lambda r: r.score is not None and r.score > 0),
    ("score <= -1.5", lambda r: r.score is not None and r.score <= -1.5),
    ("score = 2", lambda r: r.score == 2),
    ("score != 2", lambda r: r.score is not None and r.score != 2),
    ("score IN (1.5, 2, -2.5e0)", lambda r: r.score in (1.5, 2.0, -2.5)),
    ("score NOT IN (1.5)", lambda r: r.score is not None and r.score != 1.5),
    ("score IS NULL", lambda r: r.score is None),
    ("score IS NOT NULL", lambda r: r.score is not None),
    ("created >= '2026-01-05T00:00:00Z'", lambda r: r.created_ms >= at(4)),
    ("created < 1767484800000", lambda r: r.created_ms < at(3)),
    ("created = '2026-01-04T00:00:00.001Z'", lambda r: r.created_ms == at(3, 1)),
    ("created_ms = '2026-01-04T02:00:00.002+02:00'", lambda r: r.created_ms == at(3, 2)),
    ("created > '2026-01-09T00:00:00.000000Z'", lambda r: r.created_ms > at(8)),
    (
        "created IN ('2026-01-02T00:00:00.001Z', 1767571200002)",
        lambda r: r.created_ms in (at(1, 1), at(4, 2)),
    ),
    ("note = 'note-A1'", lambda r: r.note == "note-A1"),
    ("note != 'note-A1'", lambda r: r.note is not None and r.note != "note-A1"),
    ("note IS NULL", lambda r: r.note is None),
    ("note IS NOT NULL", lambda r: r.note is not None),
    ("note LIKE 'NOTE%'", lambda r: r.note is not None and r.note.startswith("NOTE")),
    ("note ILIKE 'note-a%'", lambda r: r.note is not None and r.note.lower().startswith("note-a")),
    (
        "note NOT IN ('note-A1', 'NOTE-B2')",
        lambda r: r.note is not None and r.note not in ("note-A1", "NOTE-B2"),
    ),
    ("flag = TRUE", lambda r: r.flag),
    ("flag != true", lambda r: not r.flag),
    ("flag = FALSE", lambda r: not r.flag),
    ("id = '5'", lambda r: r.id == 5),
    ("attributes.id IN ('1', 2, '30')", lambda r: r.id in (1, 2, 30)),
    ("tags.env = 'prod'", lambda r: r.tags.get("env") == "prod"),
    ("tag.env = 'Prod'", lambda r: r.tags.get("env") == "Prod"),
    ("tags.env != 'prod'", lambda r: "env" in r.tags and r.tags["env"] != "prod"),
    ("tags.env IS NULL", lambda r: "env" not in r.tags),
    ("tags.env IS NOT NULL", lambda r: "env" in r.tags),
    ("tags.env ILIKE 'PROD'", lambda r: r.tags.get("env", "").lower() == "prod"),
    ("tags.env LIKE 'Prod'", lambda r: r.tags.get("env") == "Prod"),
    ("tags.env IN ('prod', 'dev')", lambda r: r.tags.get("env") in ("prod", "dev")),
    ("tags.env NOT IN ('prod')", lambda r: "env" in r.tags and r.tags["env"] != "prod"),
    ("tags.env RLIKE '^[Pp]'", lambda r: r.tags.get("env", "").lower().startswith("p")),
    ("tags.`team.name` = 'ml'", lambda r: r.tags.get("team.name") == "ml"),
    ("tags.team.name = 'Ops'", lambda r: r.tags.get("team.name") == "Ops"),
    ("tags.\"my key\" = 'ünï ✓'", lambda r: r.tags.get("my key") == "ünï ✓"),
    ("tags.empty = ''", lambda r: r.tags.get("empty") == ""),
    ("tags.missing IS NULL", lambda r: True),
    ("tags.missing != 'x'", lambda r: False),
    ("n = 1 OR n = 2 AND flag = TRUE", lambda r: r.n == 1 or (r.n == 2 and r.flag)),
    ("(n = 1 OR n = 2) AND flag = TRUE", lambda r: r.n in (1, 2) and r.flag),
    (
        "NOT n = 1 AND NOT (tags.env = 'prod' OR note IS NULL)",
        lambda r: r.n != 1 and not (r.tags.get("env") == "prod" or r.note is None),
    ),
    ("NOT NOT flag = TRUE", lambda r: r.flag),
    ("name ILIKE 'abc' AND (score > 0 OR tags.env IS NULL)", _abc_case),
    ("", lambda r: True),
]


@pytest.mark.parametrize(("text", "predicate"), CASES, ids=[c[0] for c in CASES])
def test_filter_returns_expected_ids(toy: Toy, text: str, predicate: Callable[[Item], bool]) -> None:
    assert toy.ids(text) == toy.expect(predicate)


def test_like_is_case_sensitive_and_ilike_is_not(toy: Toy) -> None:
    upper, lower, folded = (
        toy.ids("name LIKE 'Abc%'"),
        toy.ids("name LIKE 'abc%'"),
        toy.ids("name ILIKE 'abc%'"),
    )
    assert upper == [1, 4, 20]
    assert lower == [2, 5, 26]
    assert folded == [1, 2, 3, 4, 5, 20, 26]
    assert toy.ids("name = 'abc'") == [2]


NOT_CASES = [
    "note = 'note-A1'",
    "note != 'note-A1'",
    "note NOT IN ('note-A1')",
    "note LIKE 'note%'",
    "note NOT ILIKE 'note%'",
    "note IS NULL",
    "score > 0",
    "score NOT IN (1.5)",
    "tags.env = 'prod'",
    "tags.env != 'prod'",
    "tags.env IS NULL",
    "tags.env NOT LIKE 'p%'",
    "name RLIKE '^a'",
    "flag = TRUE AND note IS NOT NULL",
    "n < 3 OR tags.`team.name` = 'ml'",
]


@pytest.mark.parametrize("text", NOT_CASES)
def test_not_is_the_complement(toy: Toy, text: str) -> None:
    matched, negated = set(toy.ids(text)), set(toy.ids(f"NOT ({text})"))
    assert not matched & negated
    assert matched | negated == {r.id for r in toy.rows}


def test_null_and_missing_tag_semantics(toy: Toy) -> None:
    assert toy.ids("note != 'note-A1'") == toy.expect(lambda r: r.note not in (None, "note-A1"))
    assert toy.ids("NOT note = 'note-A1'") == toy.expect(lambda r: r.note != "note-A1")
    assert toy.ids("tags.env != 'prod'") == toy.expect(lambda r: r.tags.get("env") not in (None, "prod"))
    assert toy.ids("NOT tags.env = 'prod'") == toy.expect(lambda r: r.tags.get("env") != "prod")


# ---------------------------------------------------------------- injection


@pytest.mark.parametrize(
    "value",
    [
        "x' OR '1'='1",
        "'; DROP TABLE items; --",
        "a\\' OR 1=1 --",
        "\\'",
        "' UNION SELECT 1 --",
        "日本語",
        "%",
    ],
)
def test_injection_values_match_literally(toy: Toy, value: str) -> None:
    before = toy.counts()
    spelled = literal_text(value)
    assert toy.ids(f"name = {spelled}") == toy.expect(lambda r: r.name == value)
    assert toy.ids(f"name IN ({spelled}, 'nope')") == toy.expect(lambda r: r.name == value)
    assert toy.ids(f"tags.env = {spelled}") == []
    assert toy.ids(f"tags.{spelled} IS NOT NULL") == []
    assert toy.ids(f"name RLIKE {literal_text(re.escape(value))}") == toy.expect(lambda r: value in r.name)
    assert toy.counts() == before == (len(ROWS), TAG_COUNT)


def test_hand_written_injection_filters(toy: Toy) -> None:
    assert toy.ids("name = 'x'' OR ''1''=''1'") == toy.expect(lambda r: r.name == "x' OR '1'='1")
    assert toy.ids("name = 'x\\' OR 1=1 --'") == []
    assert toy.ids("name = '''; DROP TABLE items; --'") == []
    assert toy.ids('note = "\'); DELETE FROM item_tags; --"') == []
    assert toy.counts() == (len(ROWS), TAG_COUNT)


@pytest.mark.parametrize(
    "text",
    [
        "name; DROP TABLE items",
        "tags.`x`; -- = 1",
        "name = 'a'; DROP TABLE items",
        "name = 'a' -- comment",
        "items.id = 1",
        "name = 1 UNION SELECT 1",
        "\"name\" = 'x'",
        "name = 'x' /* c */",
    ],
)
def test_malicious_keys_are_invalid(toy: Toy, text: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        toy.ids(text)
    assert info.value.reason == "INVALID_FILTER"
    assert toy.counts() == (len(ROWS), TAG_COUNT)


# ---------------------------------------------------------------- compile errors (no database needed)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("bogus = 1", "unknown key 'bogus' at position 0; valid keys: "),
        ("bogus = 1", "valid keys: id, name, n, score, created, note, flag, tags.<key>"),
        ("`tags.env` = 'x'", "unknown key '`tags.env`'"),
        ("tags = 'x'", "unknown key 'tags'"),
        (
            "name > 'a'",
            "comparator > is not allowed for key 'name' at position 0 (allowed: =, !=, IN, NOT IN, LIKE",
        ),
        ("name IS NULL", "comparator IS NULL is not allowed for key 'name'"),
        ("n LIKE '1%'", "comparator LIKE is not allowed for key 'n'"),
        ("flag < TRUE", "comparator < is not allowed for key 'flag' at position 0 (allowed: =, !=)"),
        ("tags.env > 'a'", "comparator > is not allowed for key 'tags.env'"),
        ("n = 'x'", "key 'n' at position 0 expects an integer, got string 'x'"),
        ("n = 1.5", "expects an integer, got number 1.5"),
        ("n IN (1, TRUE)", "expects an integer, got boolean TRUE"),
        ("name = 5", "key 'name' at position 0 expects a string, got number 5"),
        ("name IN ('a', 5)", "expects a string, got number 5"),
        ("score = 'x'", "expects a number, got string 'x'"),
        ("created = 1.5", "expects an integer (epoch milliseconds) or an RFC 3339 timestamp string"),
        ("created > 'yesterday'", "'yesterday' is not an RFC 3339 timestamp"),
        ("created > '2026-02-30T00:00:00Z'", "invalid timestamp"),
        ("created > '2026-01-01T00:00:00'", "is not an RFC 3339 timestamp"),
        ("created > '2026-01-01T00:00:00.0001Z'", "more precise than a millisecond"),
        ("flag = 1", "expects TRUE or FALSE, got number 1"),
        ("tags.env = 1", "key 'tags.env' at position 0 expects a string"),
        ("n = 9223372036854775808", "does not fit in 64 bits"),
        ("name RLIKE '('", "invalid regular expression at position 0"),
        ("name RLIKE 'a{2,1}'", "invalid regular expression"),
        ("name LIKE 'abc\\'", "unterminated string"),
        ("id = 'abc'", "id must be a decimal integer, got 'abc'"),
        ("name = 'a' AND n = 'b'", "key 'n' at position 15"),
    ],
)
def test_compile_errors(text: str, message: str) -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_filter(text, SPEC)
    assert info.value.reason == "INVALID_FILTER"
    assert [v.field for v in info.value.violations] == ["filter"]
    assert message in info.value.message


def test_like_pattern_may_not_end_in_lone_backslash() -> None:
    node = Comparison(Key(("name",)), "LIKE", "abc\\")
    from store.query.filter_sql import compile_node

    with pytest.raises(InvalidArgument, match="ends with a lone backslash"):
        compile_node(node, SPEC)
    compile_node(Comparison(Key(("name",)), "LIKE", "abc\\\\"), SPEC)


def test_unknown_key_metadata() -> None:
    with pytest.raises(InvalidArgument) as info:
        compile_filter("name = 'x' OR weird.key = 1", SPEC)
    assert info.value.metadata == {"key": "weird.key"}
    assert "at position 14" in info.value.message


def test_duplicate_spelling_is_programming_error() -> None:
    with pytest.raises(ValueError):
        FilterSpec(fields=(Field(("a",), items.c.name), Field(("a",), items.c.note)))


def test_only_bound_parameters_reach_sql() -> None:
    expr = compile_filter("name = 'x'' OR 1=1' AND tags.`k'--` LIKE '%;%' AND n IN (1, 2)", SPEC)
    assert expr is not None
    sql = str(sa.select(items.c.id).where(expr).compile(compile_kwargs={}))
    assert "OR 1=1" not in sql
    assert "k'--" not in sql
    assert ";" not in sql


# ---------------------------------------------------------------- SQL == Python (hypothesis)

LIKE_PIECES = ["a", "b", "c", "A", "B", "x", "%", "_", "\\%", "\\_", "\\\\", "é", " ", "'", "."]
REGEX_PIECES = ["a", "b", "c", "A", "B", "x", "^", "$", ".", ".*", "[ab]", "(c|e)", "\\.", "é", " ", "'"]


def spellable(value: str) -> bool:
    try:
        literal_text(value)
    except ValueError:
        return False
    return True


NAME_POOL = [name for name in NAMES if spellable(name)] + ["nope", "abc%", "ABC "]
NOTE_POOL = [r.note for r in ROWS if r.note] + ["note-", "nope"]
TAG_KEYS = ["env", "team.name", "my key", "missing", "empty"]
TAG_VALUES = [*ENVS, "ml", "Ops", "", "ünï ✓", "nope"]
SCORES: list[Scalar] = [-2.5, -1, 0, 0.5, 1.5, 2, 12, 100.25]
STRING_OPS = ["=", "!=", "IN", "NOT IN", "LIKE", "NOT LIKE", "ILIKE", "NOT ILIKE", "RLIKE", "NOT RLIKE"]
ORDERED_OPS = ["=", "!=", "<", "<=", ">", ">=", "IN", "NOT IN"]
CREATED = sorted({r.created_ms + d for r in ROWS for d in (-1, 0, 1)})


def ms_to_rfc3339(ms: int) -> str:
    return (EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rfc3339_ms(text: str) -> int:
    return (datetime.fromisoformat(text) - EPOCH) // timedelta(milliseconds=1)


@st.composite
def string_comparison(draw: st.DrawFn, key: Key, pool: list[str]) -> Comparison:
    op = draw(st.sampled_from(STRING_OPS))
    if op.endswith("LIKE"):
        pieces = LIKE_PIECES if "RLIKE" not in op else REGEX_PIECES
        return Comparison(key, op, "".join(draw(st.lists(st.sampled_from(pieces), max_size=5))))
    if op.endswith("IN"):
        return Comparison(key, op, tuple(draw(st.lists(st.sampled_from(pool), min_size=1, max_size=3))))
    return Comparison(key, op, draw(st.sampled_from(pool)))


@st.composite
def ordered_comparison(draw: st.DrawFn, key: Key, values: st.SearchStrategy[Scalar]) -> Comparison:
    op = draw(st.sampled_from(ORDERED_OPS))
    if op.endswith("IN"):
        return Comparison(key, op, tuple(draw(st.lists(values, min_size=1, max_size=3))))
    return Comparison(key, op, draw(values))


def null_check(key: Key) -> st.SearchStrategy[Comparison]:
    return st.sampled_from(["IS NULL", "IS NOT NULL"]).map(lambda op: Comparison(key, op, None))


def k(*parts: str) -> Key:
    return Key(parts)


tag_keys = st.sampled_from(TAG_KEYS).map(lambda key: Key(("tags", key)))
created_values: st.SearchStrategy[Scalar] = st.sampled_from(CREATED).flatmap(
    lambda ms: st.sampled_from([ms, ms_to_rfc3339(ms)])
)
id_values: st.SearchStrategy[Scalar] = st.integers(min_value=0, max_value=31).flatmap(
    lambda i: st.sampled_from([i, str(i)])
)
leaf = st.one_of(
    string_comparison(k("name"), NAME_POOL),
    string_comparison(k("note"), NOTE_POOL),
    null_check(k("note")),
    tag_keys.flatmap(lambda key: st.one_of(string_comparison(key, TAG_VALUES), null_check(key))),
    ordered_comparison(k("n"), st.integers(min_value=-1, max_value=8)),
    ordered_comparison(k("score"), st.sampled_from(SCORES)),
    null_check(k("score")),
    ordered_comparison(k("created"), created_values),
    ordered_comparison(k("id"), id_values),
    st.builds(Comparison, st.just(k("flag")), st.sampled_from(["=", "!="]), st.booleans()),
)


def extend(children: st.SearchStrategy[Node]) -> st.SearchStrategy[Node]:
    groups = st.lists(children, min_size=2, max_size=3).map(tuple)
    return st.one_of(st.builds(Not, children), groups.map(And), groups.map(Or))


toy_trees = st.recursive(leaf, extend, max_leaves=6)


def like(value: str, pattern: str) -> bool:
    out, i = [], 0
    while i < len(pattern):
        if pattern[i] == "\\" and i + 1 < len(pattern):
            out.append(re.escape(pattern[i + 1]))
            i += 2
            continue
        out.append({"%": ".*", "_": "."}.get(pattern[i], re.escape(pattern[i])))
        i += 1
    return re.fullmatch("".join(out), value, re.DOTALL) is not None


def compare(op: str, value: Any, literal: Any, backend: str) -> bool:
    """One comparison in Python, with the documented SQL semantics (missing value: false)."""
    if value is None:
        return False
    if op in ("IN", "NOT IN"):
        return (value in literal) == (op == "IN")
    if op.startswith("NOT "):
        return not compare(op[4:], value, literal, backend)
    if op == "LIKE":
        return like(value, literal)
    if op == "ILIKE":
        return like(ascii_lower(value), ascii_lower(literal))
    if op == "RLIKE":  # PostgreSQL's '.' also matches a newline, Python's (SQLite) does not
        return re.search(literal, value, re.DOTALL if backend == "postgresql" else 0) is not None
    results: dict[str, bool] = {
        "=": value == literal,
        "!=": value != literal,
        "<": value < literal,
        "<=": value <= literal,
        ">": value > literal,
        ">=": value >= literal,
    }
    return results[op]


def normalize(key: str, literal: Any) -> Any:
    if isinstance(literal, tuple):
        return tuple(normalize(key, v) for v in literal)
    if key == "created" and isinstance(literal, str):
        return rfc3339_ms(literal)
    if key == "id" and isinstance(literal, str):
        return int(literal)
    return literal


def evaluate(node: Node, row: Item, backend: str) -> bool:
    if isinstance(node, Not):
        return not evaluate(node.item, row, backend)
    if isinstance(node, And):
        return all(evaluate(item, row, backend) for item in node.items)
    if isinstance(node, Or):
        return any(evaluate(item, row, backend) for item in node.items)
    parts = node.key.parts
    if parts[0] == "tags":
        tag_key = ".".join(parts[1:])
        if node.op in ("IS NULL", "IS NOT NULL"):
            return (tag_key in row.tags) == (node.op == "IS NOT NULL")
        return compare(node.op, row.tags.get(tag_key), node.value, backend)
    value = getattr(row, {"created": "created_ms"}.get(parts[0], parts[0]))
    if node.op in ("IS NULL", "IS NOT NULL"):
        return (value is None) == (node.op == "IS NULL")
    return compare(node.op, value, normalize(parts[0], node.value), backend)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tree=toy_trees)
def test_sql_agrees_with_python(toy: Toy, tree: Node) -> None:
    text = to_text(tree)
    assert toy.ids(text) == toy.expect(lambda r: evaluate(tree, r, toy.backend)), text


# ---------------------------------------------------------------- keyset paging

ORDER_SPEC = OrderSpec(
    keys=(
        OrderKey(("id",), items.c.id),
        OrderKey(("name", "attributes.name"), items.c.name),
        OrderKey(("n",), items.c.n),
        OrderKey(("created_ms",), items.c.created_ms),
        OrderKey(("flag",), items.c.flag),
    ),
    default=("created_ms DESC",),
    tiebreaker="id",
)
SORT_KEYS = ["n", "name", "created_ms", "flag"]
DIRS = ["ASC", "DESC"]
ORDERS: list[list[str]] = (
    [[], ["id DESC"], ["n DESC", "id DESC"]]
    + [[f"{key} {d}"] for key in SORT_KEYS for d in DIRS]
    + [[f"{a} {da}", f"{b} {db}"] for a, b in permutations(SORT_KEYS, 2) for da in DIRS for db in DIRS]
    + [["flag DESC", "n ASC", "created_ms DESC"], ["n", "flag DESC", "name"], ["flag", "n DESC", "id DESC"]]
)
codec = PageTokenCodec(b"toy-page-token-secret-0123456789")


def page_through(toy: Toy, order_by: list[str], page_size: int, where: str = "") -> list[int]:
    terms = parse_order_by(order_by, ORDER_SPEC)
    binding = binding_of("ListItems", where, order_text(terms))
    expr = compile_filter(where, SPEC)
    stmt = sa.select(items) if expr is None else sa.select(items).where(expr)
    seen: list[int] = []
    token = ""
    with toy.engine.connect() as conn:
        for _ in range(len(toy.rows) + 2):
            after = codec.decode(token, binding) if token else None
            rows, last = fetch_page(
                lambda s: conn.execute(s).all(),
                stmt,
                terms,
                page_size=page_size,
                after=after,
                values_of=row_values(terms),
            )
            assert len(rows) <= page_size
            seen += [row.id for row in rows]
            if last is None:
                return seen
            token = codec.encode(last, binding)
    raise AssertionError("paging did not end")


def ordered_ids(toy: Toy, order_by: list[str], where: str = "") -> list[int]:
    terms = parse_order_by(order_by, ORDER_SPEC)
    expr = compile_filter(where, SPEC)
    stmt = sa.select(items.c.id).order_by(*(t.clause() for t in terms))
    with toy.engine.connect() as conn:
        return list(conn.execute(stmt if expr is None else stmt.where(expr)).scalars())


@pytest.mark.parametrize("order_by", ORDERS, ids=[", ".join(o) or "default" for o in ORDERS])
def test_keyset_pages_match_single_query(toy: Toy, order_by: list[str]) -> None:
    expected = ordered_ids(toy, order_by)
    assert sorted(expected) == [r.id for r in toy.rows]
    for page_size in range(1, 8):
        assert page_through(toy, order_by, page_size) == expected, page_size


@pytest.mark.parametrize("where", ["NOT tags.env = 'prod'", "n > 2 AND name RLIKE 'a'", "note IS NULL"])
def test_keyset_pages_with_filter(toy: Toy, where: str) -> None:
    for order_by in (["name DESC"], ["flag", "n DESC"], []):
        expected = ordered_ids(toy, order_by, where)
        for page_size in (1, 3, 7):
            assert page_through(toy, order_by, page_size, where) == expected


def test_rows_inserted_while_paging_do_not_shift_pages(toy: Toy) -> None:
    terms = parse_order_by(["n DESC", "name"], ORDER_SPEC)
    expected = ordered_ids(toy, ["n DESC", "name"])
    seen: list[int] = []
    after = None
    extra = 1000
    try:
        while True:
            with toy.engine.connect() as conn:
                rows, after = fetch_page(
                    lambda s: conn.execute(s).all(),
                    sa.select(items),
                    terms,
                    page_size=4,
                    after=after,
                    values_of=row_values(terms),
                )
            seen += [row.id for row in rows if row.id <= 1000]
            with toy.engine.begin() as conn:  # a new row before, at and after the cursor each time
                for n in (8, rows[-1].n, -1):
                    extra += 1
                    row = {"id": extra, "name": "inserted", "n": n, "created_ms": 0, "flag": True}
                    conn.execute(items.insert().values(row))
            if after is None:
                break
        assert seen == expected
    finally:
        with toy.engine.begin() as conn:
            conn.execute(items.delete().where(items.c.id > 1000))
    assert toy.counts() == (len(ROWS), TAG_COUNT)
