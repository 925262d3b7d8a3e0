"""Concurrent span ingestion through two server processes on one PostgreSQL (SPEC §0, §3.3).

Many client threads, split over two ``python -m server serve`` processes, send interleaved
LogSpans batches for one set of traces; a batch holds spans of several traces in a shuffled
order, and spans are re-sent by other threads with other contents. Every call must succeed,
PostgreSQL must record no deadlock at all (the server would retry one, hiding it from the
caller: ``pg_stat_database.deadlocks`` does not), every span must be stored, and each trace's
span count, token usage and time range must equal a recomputation from its stored spans.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from mlgenai.client import connect
from mlgenai.v1 import span_pb2
from server.childproc import ServerProcess
from store.engine import make_admin_engine
from tests.api.trace_support import OK, TRACE_OK, Traces, recomputed, sid, span, stored_aggregates, tid, usage

pytestmark = [pytest.mark.slow, pytest.mark.postgresql_only]

TRACES = 10
SPANS_PER_TRACE = 120  # besides the root
THREADS = 16
BATCHES_PER_THREAD = 12
WAIT_S = 120


def _own_span(trace: int, n: int, rng: random.Random) -> span_pb2.Span:
    """Span ``n`` of ``trace``: a tree of depth 3; some parents report usage (hiding their children's)."""
    parent = sid(1) if n < 10 else sid(2 + n % 10)
    attrs = usage(rng.randint(0, 50), rng.randint(0, 50)) if n % 4 else {}
    start = 10 + n + rng.randint(0, 5)
    return span(
        tid(trace), sid(2 + n), parent, name=f"s{n}", start=start, end=start + rng.randint(0, 3000), attrs=attrs
    )


def _plan(seed: int) -> list[list[span_pb2.Span]]:
    """One thread's batches: 1-4 traces each, every trace's spans covered by some thread."""
    rng = random.Random(seed)
    batches = []
    for _ in range(BATCHES_PER_THREAD):
        spans = []
        for trace in rng.sample(range(1, TRACES + 1), rng.randint(1, 4)):
            spans.append(span(tid(trace), sid(1), name="root", start=rng.randint(0, 5), end=4000, status=OK))
            spans.extend(_own_span(trace, n, rng) for n in rng.sample(range(SPANS_PER_TRACE), 25))
        rng.shuffle(spans)
        batches.append(spans)
    return batches


def _deadlocks(db_url: str) -> int:
    """PostgreSQL's deadlock count for the test database, once no other session is connected
    (backends report their statistics when they exit)."""
    engine = make_admin_engine(db_url)
    try:
        with engine.connect() as conn:
            others = sa.text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
            deadline = time.monotonic() + WAIT_S
            while conn.execute(others).scalar_one() > 0:
                assert time.monotonic() < deadline, "server sessions did not end"
                time.sleep(0.05)
            conn.execute(sa.text("SELECT pg_stat_clear_snapshot()"))
            query = sa.text("SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()")
            return int(conn.execute(query).scalar_one())
    finally:
        engine.dispose()


@pytest.fixture
def servers(db_url: str) -> Iterator[list[ServerProcess]]:
    procs = [ServerProcess(db_url, "--threads", "8") for _ in range(2)]
    try:
        for proc in procs:
            proc.start()
        yield procs
    finally:
        for proc in procs:
            proc.stop()


def test_two_processes_ingest_the_same_traces(db_url: str, servers: list[ServerProcess]) -> None:
    with connect(servers[0].target, timeout=WAIT_S) as client:
        exp = Traces(client).experiment("ingestion")
    barrier = threading.Barrier(THREADS)
    plans = [_plan(seed) for seed in range(THREADS)]
    # Every span of every trace is in some plan (a final pass covers what the samples missed).
    sent_ids = {(s.trace_id, s.span_id) for plan in plans for batch in plan for s in batch}
    rng = random.Random(99)
    rest = [_own_span(t, n, rng) for t in range(1, TRACES + 1) for n in range(SPANS_PER_TRACE)]
    plans[-1].append([s for s in rest if (s.trace_id, s.span_id) not in sent_ids])

    def run(seed: int) -> int:
        with connect(servers[seed % 2].target, timeout=WAIT_S, retry=None) as own:
            traces = Traces(own)
            barrier.wait(WAIT_S)
            return sum(traces.log(exp, *batch).span_count for batch in plans[seed] if batch)

    with ThreadPoolExecutor(THREADS) as pool:
        stored_per_call = list(pool.map(run, range(THREADS)))  # raises if any call failed
    assert sum(stored_per_call) >= TRACES * (SPANS_PER_TRACE + 1)

    with connect(servers[1].target, timeout=WAIT_S) as client:
        tr = Traces(client)
        for n in range(1, TRACES + 1):
            trace = tr.get(tid(n))
            assert {s.span_id for s in trace.spans} == {sid(1)} | {sid(2 + i) for i in range(SPANS_PER_TRACE)}
            assert stored_aggregates(trace.info) == recomputed(trace.spans), tid(n)
            assert trace.info.state == TRACE_OK and trace.info.name == "root"
    for proc in servers:
        proc.stop()
    assert _deadlocks(db_url) == 0  # a fresh database: the count started at 0
