"""``insert_rows`` (store/query/bulk.py) on both databases: the rows are stored, ``meanwhile``
runs exactly once (PostgreSQL: between the end of the COPY's data and its result), and an
error on either side is raised with nothing stored and the thread's connection still usable."""

from __future__ import annotations

import json
from typing import Any

import pytest
import sqlalchemy as sa

from store.orm import ExperimentTagRow
from store.orm.base import table
from store.orm.traces import SpanRow, TraceRow
from store.query import bulk
from store.query.bulk import insert_rows
from store.uow import Database, UnitOfWork
from tests.helpers import count_rows

TAGS = table(ExperimentTagRow)
COLUMNS = ("experiment_id", "key", "value")
ROWS = 250  # more than psycopg's 32 KB send buffer holds: the COPY's data goes in several parts


def _rows(prefix: str, n: int) -> list[tuple[Any, ...]]:
    return [(0, f"{prefix}-{i:04d}", "v" * 200) for i in range(n)]  # on the Default experiment


def _insert(database: Database, rows: list[tuple[Any, ...]], meanwhile: Any = None) -> None:
    def work(uow: UnitOfWork) -> None:
        insert_rows(uow, TAGS, COLUMNS, rows, meanwhile=meanwhile)

    database.write(work)


def _stored(database: Database, prefix: str) -> int:
    return count_rows(database, "experiment_tags", f"key LIKE '{prefix}-%'")


def test_rows_are_stored_and_meanwhile_runs_once(database: Database) -> None:
    calls: list[int] = []
    _insert(database, _rows("a", ROWS), meanwhile=lambda: calls.append(_stored(database, "a")))
    assert len(calls) == 1
    assert calls[0] == 0  # (another connection: the COPY's rows are not committed yet)
    assert _stored(database, "a") == ROWS
    _insert(database, [], meanwhile=lambda: calls.append(-1))  # no rows: meanwhile still runs
    assert calls[1:] == [-1]


def test_an_error_of_meanwhile_is_raised_after_the_copy_and_nothing_is_stored(database: Database) -> None:
    def fail() -> None:
        raise ValueError("meanwhile failed")

    with pytest.raises(ValueError, match="meanwhile failed"):
        _insert(database, _rows("b", ROWS), meanwhile=fail)
    assert _stored(database, "b") == 0
    _insert(database, _rows("b2", 3))  # the same thread's connection, still in step
    assert _stored(database, "b2") == 3


def test_a_failing_copy_raises_its_error_and_nothing_is_stored(database: Database) -> None:
    calls: list[int] = []
    rows = _rows("c", ROWS) + _rows("c", 1)  # the last row repeats the first one's key
    with pytest.raises(sa.exc.IntegrityError):
        _insert(database, rows, meanwhile=lambda: calls.append(1))
    assert _stored(database, "c") == 0
    assert len(calls) <= 1  # PostgreSQL may find the duplicate before or after the data's end
    _insert(database, _rows("c2", 3), meanwhile=lambda: calls.append(2))
    assert _stored(database, "c2") == 3 and calls[-1] == 2


# -- the stream made by store/_pgcopy.c against psycopg's write_row -------------------------------

TRACES, SPANS = table(TraceRow), table(SpanRow)
TRACE_COLUMNS = (
    "trace_id", "experiment_id", "request_time", "state", "name", "span_count", "request_time_from_caller",
    "duration_from_caller", "state_from_caller", "create_time", "update_time", "execution_duration",
)  # fmt: skip
SPAN_COLUMNS = (
    "trace_id", "span_id", "parent_span_id", "name", "span_type", "status", "start_time_unix_nano",
    "end_time_unix_nano", "input_tokens", "payload", "proto",
)  # fmt: skip


def _trace_rows(prefix: str) -> list[tuple[Any, ...]]:
    """Every kind of value the traces table takes: text (empty, astral, NUL-free), int8 and int4
    at their limits, booleans, NULLs."""
    names = ["", "plain", "caf\u00e9 \U0001f600", "x" * 5000, None]
    return [
        (f"{prefix}-{i}", 0, [0, -(2**63), 2**63 - 1, 1][i % 4], "OK", names[i % 5], [0, -(2**31), 2**31 - 1][i % 3],
         i % 2 == 0, i % 3 == 0, False, i, 2**40 + i, None if i % 2 else i)
        for i in range(12)
    ]  # fmt: skip


def _span_rows(prefix: str) -> list[tuple[Any, ...]]:
    """jsonb (nested, unicode, escapes) and bytea (empty, every byte value)."""
    payloads = ['{"a": [1, 2.5, null, true], "b": {"c": "\\u00e9\\n\\"q\\""}}', "[]", '"caf\u00e9"', "{}"]
    return [
        (f"{prefix}-{i % 3}", f"{i:016x}", None if i % 2 else "0" * 16, f"s{i}", "LLM", "OK", i + 1, None, i,
         payloads[i % 4], bytes(range(256)) * (i % 3))
        for i in range(9)
    ]  # fmt: skip


def _stored_rows(database: Database, name: str, columns: tuple[str, ...], prefix: str) -> list[tuple[Any, ...]]:
    with database.engine.connect() as conn:
        sql = f"SELECT {', '.join(columns)} FROM {name} WHERE trace_id LIKE :p ORDER BY 1, 2"
        return [tuple(r) for r in conn.execute(sa.text(sql), {"p": f"{prefix}-%"})]


@pytest.mark.parametrize("native", [True, False])
def test_every_column_kind_is_stored_the_same_with_and_without_the_c_module(
    database: Database, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    assert bulk._pgcopy is not None, "store._pgcopy is not built: install gcc and the Python headers, then make install"
    if not native:
        monkeypatch.setattr(bulk, "_pgcopy", None)
    prefix = f"kinds{int(native)}"
    traces, spans = _trace_rows(prefix), _span_rows(prefix)

    def work(uow: UnitOfWork) -> None:
        insert_rows(uow, TRACES, TRACE_COLUMNS, traces)
        insert_rows(uow, SPANS, SPAN_COLUMNS, spans)

    database.write(work)
    assert _stored_rows(database, "traces", TRACE_COLUMNS, prefix) == sorted(traces, key=lambda r: r[0])
    stored = _stored_rows(database, "spans", SPAN_COLUMNS, prefix)
    expected = sorted(spans, key=lambda r: (r[0], r[1]))
    assert [(*r[:9], r[10]) for r in stored] == [(*r[:9], r[10]) for r in expected]
    as_json = database.engine.dialect.name == "sqlite"  # psycopg reads jsonb itself; SQLite gives its text
    assert [json.loads(r[9]) if as_json else r[9] for r in stored] == [json.loads(r[9]) for r in expected]


@pytest.mark.parametrize(
    ("change", "error"),
    [
        ({2: "1"}, TypeError),  # a str for int8 (request_time)
        ({2: 2**63}, OverflowError),
        ({5: 2**31}, OverflowError),  # int4 (span_count)
        ({3: 7}, TypeError),  # an int for text (state)
        ({3: "\ud800"}, UnicodeEncodeError),
        ({6: 1}, TypeError),  # an int for bool
    ],
)
def test_a_value_that_fits_no_column_raises_before_anything_is_sent(
    database: Database, change: dict[int, Any], error: type[Exception]
) -> None:
    good = _trace_rows("e-ok")[:3]
    bad = list(good[2])
    for at, value in change.items():
        bad[at] = value
    kinds = bulk._copy_types(TRACES, TRACE_COLUMNS)[2]
    with pytest.raises(error):
        _pgcopy_stream([*good, tuple(bad)], kinds)
    before = count_rows(database, "traces")
    if database.engine.dialect.name == "postgresql":  # (SQLite's executemany has its own checks)
        with pytest.raises(error):
            _insert_into(database, TRACES, TRACE_COLUMNS, [*good[:2], tuple(bad)])
        assert count_rows(database, "traces") == before
    _insert_into(database, TRACES, TRACE_COLUMNS, good[:2])  # the thread's connection is still usable
    assert count_rows(database, "traces") == before + 2


def _pgcopy_stream(rows: list[tuple[Any, ...]], kinds: str) -> bytes:
    assert bulk._pgcopy is not None
    return bytes(bulk._pgcopy.copy_binary(rows, kinds))


def _insert_into(database: Database, target: sa.Table, columns: tuple[str, ...], rows: list[tuple[Any, ...]]) -> None:
    database.write(lambda uow: insert_rows(uow, target, columns, rows))


def test_the_stream_is_postgresqls_binary_copy_format() -> None:
    data = _pgcopy_stream([("a", None, b"\x00\xff", -1, 7, True, "{}")], "tjbqiBj")
    assert data == (
        b"PGCOPY\n\xff\r\n\x00" + b"\x00" * 8  # signature, flags, no header extension
        + b"\x00\x07"  # 7 fields
        + b"\x00\x00\x00\x01a" + b"\xff\xff\xff\xff" + b"\x00\x00\x00\x02\x00\xff"
        + b"\x00\x00\x00\x08" + b"\xff" * 8 + b"\x00\x00\x00\x04\x00\x00\x00\x07" + b"\x00\x00\x00\x01\x01"
        + b"\x00\x00\x00\x03\x01{}"  # jsonb: its version byte, then the text
        + b"\xff\xff"  # the trailer
    )  # fmt: skip
    with pytest.raises(TypeError, match="row 0"):
        _pgcopy_stream([("a", "b")], "t")  # a row of another width
