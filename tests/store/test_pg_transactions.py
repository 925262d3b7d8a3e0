"""PostgreSQL: a write's transaction (store/query/pg_exec.py). Its first statement begins it
(psycopg's BEGIN): every later statement runs in it, with the connection's settings (that a
rollback undoes it is ``test_a_write_transaction_begins_before_its_first_statement`` in
test_experiment_repository.py); a failure of that first statement leaves it failed and the
connection in step for its next call. A COMMIT that fails raises, stores nothing and leaves the
connection usable."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest
import sqlalchemy as sa

from store.orm import ExperimentTagRow
from store.orm.base import table
from store.uow import Database, UnitOfWork
from tests.helpers import count_rows

pytestmark = pytest.mark.postgresql_only

TAGS = table(ExperimentTagRow)
XID = sa.select(sa.func.pg_current_xact_id().cast(sa.Text).label("xid"))
INSERT_TAG = sa.insert(TAGS).values(experiment_id=0, key=sa.bindparam("b_key"), value="v").returning(TAGS.c.key)
FAILING = sa.select((sa.literal(1) / sa.bindparam("b_zero", type_=sa.Integer)).label("n"))


def _pgconn(uow: UnitOfWork) -> Any:
    dbapi_conn: Any = uow.conn.connection.dbapi_connection
    return dbapi_conn.pgconn


def test_the_first_statement_begins_the_transaction_the_next_ones_run_in(database: Database) -> None:
    def work(uow: UnitOfWork) -> tuple[Any, ...]:
        assert _pgconn(uow).transaction_status == psycopg.pq.TransactionStatus.IDLE
        first = uow.fetch(XID, {})[0].xid
        status = _pgconn(uow).transaction_status
        second = uow.fetch(XID, {})[0].xid
        isolation = uow.fetch(sa.select(sa.func.current_setting("transaction_isolation").label("i")), {})[0].i
        return first, second, status, isolation

    first, second, status, isolation = database.write(work)
    assert first == second  # one transaction (autocommit would assign each statement its own)
    assert status == psycopg.pq.TransactionStatus.INTRANS
    assert isolation == "read committed"  # the engine's setting, as psycopg's BEGIN sends it


def test_a_failing_first_statement_raises_and_leaves_the_connection_in_step(database: Database) -> None:
    def work(uow: UnitOfWork) -> Any:
        try:
            return uow.fetch(FAILING, {"b_zero": 0})
        finally:
            state = _pgconn(uow).transaction_status
            assert state == psycopg.pq.TransactionStatus.INERROR, state

    for _ in range(2):
        with pytest.raises(sa.exc.DataError, match="division by zero"):
            database.write(work)
        got = database.write(lambda uow: (uow.fetch(FAILING, {"b_zero": 1})[0].n, uow.fetch(XID, {})[0].xid))
        assert got[0] == 1


def test_a_failing_commit_raises_stores_nothing_and_leaves_the_connection_usable(database: Database) -> None:
    """A deferred unique constraint is checked at COMMIT: the commit fails, the transaction's
    other write is gone with it, and the thread's next write commits."""

    def work(uow: UnitOfWork) -> None:
        uow.conn.exec_driver_sql(
            "CREATE TEMP TABLE deferred (x int UNIQUE DEFERRABLE INITIALLY DEFERRED) ON COMMIT DROP"
        )
        uow.conn.exec_driver_sql("INSERT INTO deferred VALUES (1), (1)")  # fine until COMMIT
        assert [r.key for r in uow.fetch(INSERT_TAG, {"b_key": "with-the-failed-commit"})] == ["with-the-failed-commit"]

    with pytest.raises(sa.exc.IntegrityError) as failed:
        database.write(work)
    assert getattr(failed.value.orig, "sqlstate", None) == "23505"
    assert count_rows(database, "experiment_tags", "key = 'with-the-failed-commit'") == 0
    assert database.write(lambda uow: [r.key for r in uow.fetch(INSERT_TAG, {"b_key": "after"})]) == ["after"]
    assert count_rows(database, "experiment_tags", "key = 'after'") == 1


def test_a_committed_write_leaves_no_transaction_open(database: Database) -> None:
    """After the commit the connection is idle, and the write is visible to another
    connection."""

    def work(uow: UnitOfWork) -> Any:
        uow.fetch(INSERT_TAG, {"b_key": "committed"})
        return uow

    uow = database.write(work)
    assert _pgconn(uow).transaction_status == psycopg.pq.TransactionStatus.IDLE
    assert count_rows(database, "experiment_tags", "key = 'committed'") == 1
