"""Faults under load (issue 7): PostgreSQL restarted, or a server worker killed, mid-load.

The test runs its own cluster (``tests/load/private_pg.py``) and one server process on it.
Writers create assessments, each with its own request id, and retry a call that failed with
UNAVAILABLE under the same request id until it is acknowledged — what a client that must not
lose or double a write does. While they run, PostgreSQL is stopped for two seconds and started
again. Then:

* calls during the outage failed with UNAVAILABLE (never INTERNAL or anything else);
* the same server process served again after the restart, without being restarted itself;
* every acknowledged write — before, during (acknowledged by a retry) or after the outage — is
  stored exactly once, and nothing is stored that was not acknowledged.

The second test kills one of two server worker processes with SIGKILL under the same load (on
both databases): the writers' retries complete every write on the surviving worker or on the
replacement the server starts, again with no write lost or doubled.
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import MlgenaiError, connect
from mlgenai.client._assessments import assessment
from mlgenai.v1 import assessment_service_pb2 as apb
from server.childproc import ServerProcess
from store.engine import make_engine
from tests.load.private_pg import PrivateCluster
from tests.load.support import wait_for

pytestmark = pytest.mark.slow
WRITERS = 4
OUTAGE_S = 2.0


@pytest.fixture
def cluster() -> Iterator[PrivateCluster]:
    own = PrivateCluster().create()
    try:
        yield own
    finally:
        own.destroy()


class Writers:
    """``WRITERS`` threads creating assessments until stopped; what was acknowledged, when."""

    def __init__(self, target: str, trace_id: str, writers: int = WRITERS) -> None:
        self.writers = writers
        self.target, self.trace_id = target, trace_id
        self.stop = threading.Event()
        self.acknowledged: list[tuple[str, float]] = []  # (name, time acknowledged)
        self.codes: Counter[str] = Counter()  # failures seen, by status code
        self._lock = threading.Lock()

    def run(self, writer: int) -> None:
        with connect(self.target, retry=None, timeout=5) as client:
            n = 0
            while not self.stop.is_set():
                name = f"w{writer}-{n}"
                request = apb.CreateAssessmentRequest(
                    assessment=assessment(self.trace_id, name, True), request_id=str(uuid.uuid4())
                )
                while True:  # the same request (and request id) until it is acknowledged
                    try:
                        client.assessments.CreateAssessment(request)
                        break
                    except MlgenaiError as err:
                        with self._lock:
                            self.codes[err.code().name] += 1
                        if err.code() != grpc.StatusCode.UNAVAILABLE:
                            raise
                        time.sleep(0.05)
                with self._lock:
                    self.acknowledged.append((name, time.monotonic()))
                n += 1


def test_postgresql_restart_mid_load_loses_nothing(cluster: PrivateCluster) -> None:
    with ServerProcess(cluster.url, "--threads", "8") as server:
        with connect(server.target, timeout=10) as client:
            experiment = client.create_experiment("faults")["experiment_id"]
            trace_id = client.start_trace(experiment)["trace_id"]
        writers = Writers(server.target, trace_id)
        with ThreadPoolExecutor(writers.writers) as pool:
            running = [pool.submit(writers.run, w) for w in range(writers.writers)]
            time.sleep(1.5)
            cluster.stop()
            down_at = time.monotonic()
            time.sleep(OUTAGE_S)
            cluster.start()
            up_at = time.monotonic()
            time.sleep(2.0)
            writers.stop.set()
            for future in running:
                future.result(timeout=60)  # a writer that saw anything but UNAVAILABLE raises here
        assert server.proc is not None and server.proc.poll() is None, "the server died with its database"
        with connect(server.target, retry=None, timeout=5) as client:
            assert client.get_experiment(experiment)["name"] == "faults"

    assert set(writers.codes) == {"UNAVAILABLE"}, writers.codes
    before = [name for name, at in writers.acknowledged if at < down_at]
    after = [name for name, at in writers.acknowledged if at > up_at]
    assert before and after, (len(before), len(after))
    _assert_stored_exactly_once(cluster.url, writers)


def test_a_killed_worker_loses_and_doubles_nothing(db_url: str) -> None:
    with ServerProcess(db_url, "--threads", "4", workers=2) as server:
        wait_for(lambda: len(server.worker_pids()) == 2)
        with connect(server.target, timeout=10) as client:
            experiment = client.create_experiment("faults")["experiment_id"]
            trace_id = client.start_trace(experiment)["trace_id"]
        writers = Writers(server.target, trace_id, writers=8)  # own connections: both workers serve
        with ThreadPoolExecutor(writers.writers) as pool:
            running = [pool.submit(writers.run, w) for w in range(writers.writers)]
            time.sleep(1.5)
            victim = server.worker_pids()[0]
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
            time.sleep(2.0)
            writers.stop.set()
            for future in running:
                future.result(timeout=60)
        wait_for(lambda: len(server.worker_pids()) == 2 and victim not in server.worker_pids())
    assert set(writers.codes) <= {"UNAVAILABLE"}, writers.codes
    assert any(at > killed_at for _, at in writers.acknowledged)
    _assert_stored_exactly_once(db_url, writers)


def _assert_stored_exactly_once(url: str, writers: Writers) -> None:
    engine = make_engine(url)
    with engine.connect() as conn:
        stored = Counter(conn.execute(sa.text("SELECT name FROM assessments")).scalars())
    engine.dispose()
    doubled = {name: n for name, n in stored.items() if n > 1}
    assert not doubled, doubled
    assert set(stored) == {name for name, _ in writers.acknowledged}
