"""``insert_rows`` (store/query/bulk.py) on both databases: the rows are stored, ``meanwhile``
runs exactly once (PostgreSQL: between the end of the COPY's data and its result), and an
error on either side is raised with nothing stored and the thread's connection still usable."""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from store.orm import ExperimentTagRow
from store.orm.base import table
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
