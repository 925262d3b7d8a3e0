"""Shared by the load tests: waiting for a condition, holding the database so writes queue."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from store.engine import make_engine


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


@contextmanager
def writes_blocked(db_url: str) -> Iterator[Callable[[], int]]:
    """Hold a lock that CreateExperiment waits for; yields a count of waiting calls (or -1)."""
    if db_url.startswith("sqlite"):
        conn = sqlite3.connect(db_url.removeprefix("sqlite:///"), isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield lambda: -1
        finally:
            conn.execute("ROLLBACK")
            conn.close()
        return
    engine = make_engine(db_url, pool_size=2)
    with engine.connect() as locker, engine.connect() as observer:
        locker.execute(sa.text("LOCK TABLE experiments IN EXCLUSIVE MODE"))
        waiting = sa.text(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )

        def count() -> int:
            n = int(observer.execute(waiting).scalar_one())
            observer.rollback()  # pg_stat_activity is a snapshot per transaction
            return n

        try:
            yield count
        finally:
            locker.rollback()
    engine.dispose()
