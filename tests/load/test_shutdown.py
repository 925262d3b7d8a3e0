"""Graceful shutdown and multi-process serving, with real server processes.

The SIGTERM test makes calls provably in flight by holding a database lock that their writes
wait for (PostgreSQL ``LOCK TABLE``; SQLite ``BEGIN IMMEDIATE``), sends SIGTERM, then releases
the lock: every accepted call must complete successfully and be stored, new calls must be
refused, and the server must exit cleanly within its grace period.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import MlgenaiError, connect
from server.childproc import ServerProcess
from store.engine import make_engine

pytestmark = pytest.mark.slow
IN_FLIGHT = 10


def _wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not reached")
        time.sleep(0.05)


@contextmanager
def _writes_blocked(db_url: str) -> Iterator[Callable[[], int]]:
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


def test_sigterm_lets_accepted_calls_finish_and_refuses_new_ones(db_url: str, tmp_path: Path) -> None:
    srv = ServerProcess(db_url, "--grace-period", "30", "--threads", "16").start()
    try:
        with connect(srv.target, retry=None, timeout=60) as client, ThreadPoolExecutor(IN_FLIGHT) as pool:
            client.get_experiment("0")  # connect before blocking
            with _writes_blocked(db_url) as waiting:
                calls: list[Future[dict[str, object]]] = [
                    pool.submit(client.create_experiment, f"inflight-{i}") for i in range(IN_FLIGHT)
                ]
                if waiting() >= 0:
                    _wait_for(lambda: waiting() >= IN_FLIGHT)
                else:
                    time.sleep(1.0)  # SQLite: no view of waiters; give the calls time to arrive
                srv.signal(signal.SIGTERM)
                time.sleep(0.5)
                assert srv.proc is not None and srv.proc.poll() is None, "server exited before draining"
                with connect(srv.target, retry=None, timeout=3) as late, pytest.raises(MlgenaiError) as refused:
                    late.get_experiment("0")
                assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
            results = [f.result(timeout=30) for f in calls]
        assert sorted(str(r["name"]) for r in results) == sorted(f"inflight-{i}" for i in range(IN_FLIGHT))
        assert srv.wait(30) == 0
    finally:
        srv.stop()
    engine = make_engine(db_url)
    with engine.connect() as conn:
        stored = conn.execute(sa.text("SELECT count(*) FROM experiments WHERE name LIKE 'inflight-%'")).scalar_one()
    engine.dispose()
    assert stored == IN_FLIGHT


def _served_pids(log: Path) -> set[int]:
    pids = set()
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == "rpc":
                pids.add(record["pid"])
    return pids


def _call_on_fresh_channels(target: str, n: int) -> None:
    for i in range(n):
        with connect(target, timeout=10) as client:
            assert client.get_experiment("0")["name"] == "Default", i


def test_workers_share_the_port_and_a_dead_worker_is_replaced(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with ServerProcess(db_url, workers=2, log_level="INFO", log_path=log) as srv:
        _wait_for(lambda: len(srv.worker_pids()) == 2)
        workers = srv.worker_pids()
        _wait_for(lambda: _call_on_fresh_channels(srv.target, 24) is None and _served_pids(log) == set(workers))
        os.kill(workers[0], signal.SIGKILL)
        _wait_for(lambda: len(srv.worker_pids()) == 2 and workers[0] not in srv.worker_pids())
        _call_on_fresh_channels(srv.target, 24)
    assert srv.proc is not None and srv.proc.returncode == 0
