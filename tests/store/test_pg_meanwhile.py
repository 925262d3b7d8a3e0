"""PostgreSQL: a statement run with ``meanwhile`` (store/query/pg_exec.py ``run``) is sent,
``meanwhile`` runs once while PostgreSQL executes it, then its result is read — also when
either side fails, so the thread's connection stays in step for its next statement. Each test
runs the statement first in its transaction (after its BEGIN) and after another."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
import sqlalchemy as sa

from store.orm import ExperimentTagRow
from store.orm.base import table
from store.repositories.dataset_sql import fetch_binary
from store.uow import Database, UnitOfWork
from tests.helpers import count_rows

pytestmark = [pytest.mark.postgresql_only, pytest.mark.parametrize("first", [True, False], ids=["first", "second"])]

TAGS = table(ExperimentTagRow)
# Slow (pg_sleep, 0.2 s a row) so that ``meanwhile`` sees the statement running.
SLOW_UPDATE = (
    sa.update(TAGS)
    .where(TAGS.c.key.like(sa.bindparam("b_like")), sa.func.pg_sleep(0.2).is_not(None))
    .values(value=sa.bindparam("b_value"))
)
FAILING_UPDATE = sa.update(TAGS).where(TAGS.c.key.like(sa.bindparam("b_like"))).values(value=sa.text("(1/0)::text"))


def _before(uow: UnitOfWork, first: bool) -> None:
    """Unless ``first``, run a statement in the transaction before the one under test."""
    if not first:
        assert uow.fetch_column(sa.select(sa.literal(1).label("n")), {}) == [1]


def _seed(database: Database, prefix: str, n: int) -> None:
    def work(uow: UnitOfWork) -> None:
        uow.conn.execute(
            TAGS.insert(), [{"experiment_id": 0, "key": f"{prefix}-{i}", "value": "old"} for i in range(n)]
        )

    database.write(work)


def _with_value(database: Database, prefix: str, value: str) -> int:
    return count_rows(database, "experiment_tags", f"key LIKE '{prefix}-%' AND value = '{value}'")


def test_meanwhile_runs_once_while_the_statement_executes(database: Database, first: bool) -> None:
    _seed(database, "m", 3)
    seen: list[tuple[str, int]] = []

    def meanwhile() -> None:  # the statement is in PostgreSQL: its backend turns active
        deadline = time.monotonic() + 0.5
        while _state_of_writer(database) != "active" and time.monotonic() < deadline:
            time.sleep(0.01)
        seen.append((_state_of_writer(database), threading.get_ident()))

    def work(uow: UnitOfWork) -> int:
        _before(uow, first)
        return fetch_binary(uow, SLOW_UPDATE, {"b_like": "m-%", "b_value": "new"}, meanwhile=meanwhile)[1]

    assert database.write(work) == 3
    assert seen == [("active", threading.get_ident())]
    assert _with_value(database, "m", "new") == 3


def test_an_error_of_meanwhile_is_raised_and_the_statement_is_undone(database: Database, first: bool) -> None:
    _seed(database, "e", 2)

    def fail() -> None:
        raise ValueError("meanwhile failed")

    def work(uow: UnitOfWork) -> Any:
        _before(uow, first)
        return fetch_binary(uow, SLOW_UPDATE, {"b_like": "e-%", "b_value": "new"}, meanwhile=fail)

    with pytest.raises(ValueError, match="meanwhile failed"):
        database.write(work)
    assert _with_value(database, "e", "old") == 2  # rolled back
    database.write(lambda uow: fetch_binary(uow, SLOW_UPDATE, {"b_like": "e-%", "b_value": "next"}))
    assert _with_value(database, "e", "next") == 2  # the same thread's connection, in step


def test_a_failing_statement_raises_its_error_after_meanwhile(database: Database, first: bool) -> None:
    _seed(database, "f", 2)
    calls: list[int] = []

    def work(uow: UnitOfWork) -> Any:
        _before(uow, first)
        return fetch_binary(uow, FAILING_UPDATE, {"b_like": "f-%"}, meanwhile=lambda: calls.append(1))

    with pytest.raises(sa.exc.DataError, match="division by zero"):
        database.write(work)
    assert calls == [1]
    assert _with_value(database, "f", "old") == 2
    database.write(
        lambda uow: fetch_binary(
            uow, SLOW_UPDATE, {"b_like": "f-%", "b_value": "next"}, meanwhile=lambda: calls.append(2)
        )
    )
    assert calls == [1, 2] and _with_value(database, "f", "next") == 2


def _state_of_writer(database: Database) -> str:
    """The state of the backend running an UPDATE of experiment_tags, seen from another connection."""
    sql = "SELECT state FROM pg_stat_activity WHERE query LIKE 'UPDATE experiment_tags%' AND pid <> pg_backend_pid()"
    with database.engine.connect() as conn:
        states = conn.execute(sa.text(sql)).scalars().all()
    return str(states[0]) if states else "none"
