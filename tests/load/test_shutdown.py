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
import time
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import MlgenaiError, connect
from server.childproc import ServerProcess
from store.engine import make_engine
from tests.load.support import wait_for, writes_blocked

pytestmark = pytest.mark.slow
IN_FLIGHT = 10


def test_sigterm_lets_accepted_calls_finish_and_refuses_new_ones(db_url: str, tmp_path: Path) -> None:
    srv = ServerProcess(db_url, "--grace-period", "30", "--threads", "16").start()
    try:
        with connect(srv.target, retry=None, timeout=60) as client, ThreadPoolExecutor(IN_FLIGHT) as pool:
            client.get_experiment("0")  # connect before blocking
            with writes_blocked(db_url) as waiting:
                calls: list[Future[dict[str, object]]] = [
                    pool.submit(client.create_experiment, f"inflight-{i}") for i in range(IN_FLIGHT)
                ]
                if waiting() >= 0:
                    wait_for(lambda: waiting() >= IN_FLIGHT)
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
        wait_for(lambda: len(srv.worker_pids()) == 2)
        workers = srv.worker_pids()
        wait_for(lambda: _call_on_fresh_channels(srv.target, 24) is None and _served_pids(log) == set(workers))
        os.kill(workers[0], signal.SIGKILL)
        wait_for(lambda: len(srv.worker_pids()) == 2 and workers[0] not in srv.worker_pids())
        _call_on_fresh_channels(srv.target, 24)
    assert srv.proc is not None and srv.proc.returncode == 0
