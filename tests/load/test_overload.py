"""Above capacity the server refuses quickly and recovers by itself (issue 7, overload).

A server with 2 request threads and room for 6 calls in progress (``--max-concurrent-rpcs``:
running plus queued) is filled with 6 writes that wait on a database lock the test holds. Every
further call must then be answered RESOURCE_EXHAUSTED at once — not queued until its deadline —
and write nothing; the 6 accepted calls complete once the lock is released, and the server
serves normally again without being restarted.
"""

from __future__ import annotations

import time
from concurrent.futures import Future, ThreadPoolExecutor

import grpc
import pytest

from mlgenai.client import Client, MlgenaiError, connect
from server.app import build_server
from server.settings import Settings
from store.uow import Database
from tests.helpers import count_rows
from tests.load.support import wait_for, writes_blocked

pytestmark = pytest.mark.slow
THREADS = 2
CAPACITY = 6  # calls in progress: THREADS running + 4 queued
EXTRA = 20


def test_calls_beyond_capacity_are_refused_at_once_and_the_server_recovers(db_url: str) -> None:
    database = Database(db_url, pool_size=THREADS)
    settings = Settings(address="127.0.0.1:0", threads=THREADS, max_concurrent_rpcs=CAPACITY, log_level="WARNING")
    running = build_server(settings, database)
    target = f"127.0.0.1:{running.port}"
    try:
        with connect(target, retry=None, timeout=60) as client, ThreadPoolExecutor(CAPACITY + EXTRA) as pool:
            client.get_experiment("0")  # connected before the database is held
            with writes_blocked(db_url) as waiting:
                accepted: list[Future[dict[str, object]]] = [
                    pool.submit(client.create_experiment, f"accepted-{i}") for i in range(CAPACITY)
                ]
                if waiting() >= 0:
                    wait_for(lambda: waiting() >= THREADS)  # both threads wait on the lock
                time.sleep(0.5)  # the other 4 are queued behind them
                # Answered while every thread is still blocked: refused, not queued behind them.
                refused = [pool.submit(_refusal, client, i) for i in range(EXTRA)]
                codes = [f.result(timeout=10) for f in refused]
                assert codes == [grpc.StatusCode.RESOURCE_EXHAUSTED] * EXTRA
                assert not any(f.done() for f in accepted), "accepted calls finished while the lock was held"
            names = sorted(str(f.result(timeout=30)["name"]) for f in accepted)
            assert names == sorted(f"accepted-{i}" for i in range(CAPACITY))
            # Recovery: the same server serves a burst at its capacity again.
            burst = [pool.submit(client.get_experiment, "0") for _ in range(CAPACITY)]
            assert [f.result(timeout=30)["name"] for f in burst] == ["Default"] * CAPACITY
            assert client.create_experiment("after")["name"] == "after"
    finally:
        running.server.stop(None).wait()
    assert count_rows(database, "experiments") == 1 + CAPACITY + 1  # Default, accepted, after
    database.dispose()


def _refusal(client: Client, i: int) -> grpc.StatusCode | None:
    """The status code of a create that should be refused (None if it succeeded)."""
    try:
        client.create_experiment(f"refused-{i}")
    except MlgenaiError as err:
        return err.code()
    return None
