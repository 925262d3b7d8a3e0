"""TraceService under concurrency (SPEC §1.5, §3.3), through the in-process server.

* SearchTraces pages stay stable while another thread ingests traces that sort between and
  around the rows being paged: no row that existed at the first page is skipped or repeated.
* LogSpans for the same trace from several threads at once: every span is stored, the trace's
  aggregates equal a recomputation from its stored spans, and no call fails or even needs a
  retry (the server's write transactions are wrapped to record conflicts).
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from mlgenai.client import Client, connect
from mlgenai.v1 import span_pb2
from store.errors import Aborted
from store.orm.traces import SpanRow
from store.uow import Database
from tests.api.trace_support import OK, TRACE_OK, Traces, recomputed, sid, span, stored_aggregates, tid, usage
from tests.helpers import count_rows

EXISTING = 60
PAGE_SIZE = 7
GRANT_PER_PAGE = 4  # traces the writer may log after each page
COMMITTED_BEFORE_NEXT_PAGE = 2  # of which at least this many are committed before the next page
WAIT_S = 60


class Writer(threading.Thread):
    """Logs one new trace per call through its own channel, as fast as its budget allows.

    The test thread grants budget after each page and waits until part of it is committed, so
    traces are inserted between every two pages while the rest race with the next page's query.
    """

    def __init__(self, target: str, write: Callable[[Traces, int], None]) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.write = write
        self.created = 0
        self.budget = 0
        self.stopping = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def run(self) -> None:
        try:
            with connect(self.target, timeout=60) as client:
                traces = Traces(client)
                while True:
                    with self.cond:
                        self.cond.wait_for(lambda: self.stopping or self.created < self.budget)
                        if self.stopping:
                            return
                    self.write(traces, self.created)
                    with self.cond:
                        self.created += 1
                        self.cond.notify_all()
        except BaseException as exc:
            self.error = exc
            with self.cond:
                self.cond.notify_all()

    def grant(self, n: int, wait_for: int) -> None:
        with self.cond:
            target = self.budget + wait_for
            self.budget += n
            self.cond.notify_all()
            assert self.cond.wait_for(lambda: self.error is not None or self.created >= target, WAIT_S)
        if self.error is not None:
            raise self.error

    def finish(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.join(WAIT_S)
        if self.error is not None:
            raise self.error


@pytest.fixture
def writer_stopper() -> Iterator[list[Writer]]:
    writers: list[Writer] = []
    yield writers
    for w in writers:
        w.finish()


def _sort_key(order: tuple[str, ...]) -> Callable[[Any], tuple[Any, ...]]:
    if order == ("execution_time_ms", "request_time DESC"):
        return lambda i: (i.execution_duration.ToMilliseconds(), -i.request_time.ToMilliseconds(), i.trace_id)
    return lambda i: (-i.request_time.ToMilliseconds(), i.trace_id)


@pytest.mark.parametrize(
    ("filter", "order"),
    [("", ()), ("trace.status = 'OK'", ("execution_time_ms", "request_time DESC"))],
    ids=["default-order", "filtered-by-duration"],
)
def test_search_pages_are_stable_while_traces_arrive(
    client: Client, target: str, writer_stopper: list[Writer], filter: str, order: tuple[str, ...]
) -> None:
    tr = Traces(client)
    exp = tr.experiment("paging")
    # Existing traces every 10 ms, durations 1..7 ms (many ties); new ones land in between.
    tr.log(exp, *(span(tid(n), sid(1), start=10 * n, end=10 * n + n % 7 + 1, status=OK) for n in range(EXISTING)))
    existing = {tid(n) for n in range(EXISTING)}

    def write(traces: Traces, k: int) -> None:
        slot = (k * 37) % EXISTING
        new = span(tid(10_000 + k), sid(1), start=10 * slot + 5, end=10 * slot + 5 + k % 7 + 1, status=OK)
        traces.log(exp, new)

    writer = Writer(target, write)
    writer_stopper.append(writer)
    writer.start()
    seen: list[Any] = []
    token, pages = "", 0
    while True:
        page = tr.search([exp], filter, order, page_size=PAGE_SIZE, page_token=token)
        seen.extend(page.traces)
        pages += 1
        token = page.next_page_token
        if not token:
            break
        writer.grant(GRANT_PER_PAGE, COMMITTED_BEFORE_NEXT_PAGE)
    ids = [i.trace_id for i in seen]
    assert len(ids) == len(set(ids)), "a trace was returned twice"
    assert existing <= set(ids), f"skipped: {sorted(existing - set(ids))}"
    assert seen == sorted(seen, key=_sort_key(order)), "pages are out of order"
    assert writer.created >= COMMITTED_BEFORE_NEXT_PAGE * (pages - 1)  # traces did arrive while paging


# -- many writers, one trace -----------------------------------------------------------------

THREADS = 8
BATCHES = 6
SPANS_PER_BATCH = 12


def _batches(seed: int) -> list[list[span_pb2.Span]]:
    """Every thread's batches for traces 1 and 2: own spans, plus spans every thread re-sends.

    Trace 1: root (sid 1) <- "agent" (sid 2, usage) <- own spans (usage, hidden by the agent's)
    and root <- own spans with usage (counted). Trace 2 shares the batches in a shuffled order.
    The root and the agent are re-sent in every batch with a usage that depends on the sender,
    so the stored copy (and the trace's usage) depends on which write came last.
    """
    rng = random.Random(seed)
    batches = []
    for b in range(BATCHES):
        own = 1000 + seed * 100 + b * SPANS_PER_BATCH
        spans = [
            span(tid(1), sid(1), name="root", start=0, end=5000, status=OK),
            span(tid(1), sid(2), sid(1), name="agent", start=1, end=4000, attrs=usage(seed, b)),
            span(tid(2), sid(1), name="root", start=100 + seed, end=6000 - seed, status=OK),
        ]
        for i in range(SPANS_PER_BATCH):
            parent = sid(2) if i % 3 == 0 else sid(1)
            spans.append(span(tid(1), sid(own + i), parent, start=10 + i, end=30 + b * 100, attrs=usage(i, 1)))
            spans.append(span(tid(2), sid(own + i), sid(1), start=200 + i, end=300 + i, attrs=usage(1, i)))
        rng.shuffle(spans)
        batches.append(spans)
    return batches


def test_concurrent_log_spans_for_the_same_trace(
    client: Client, target: str, database: Database, monkeypatch: pytest.MonkeyPatch
) -> None:
    tr = Traces(client)
    exp = tr.experiment("race")
    conflicts: list[Aborted] = []
    write_once = database._write_once

    def recording(fn: Callable[..., Any]) -> Any:
        try:
            return write_once(fn)
        except Aborted as exc:
            conflicts.append(exc)
            raise

    monkeypatch.setattr(database, "_write_once", recording)
    barrier = threading.Barrier(THREADS)

    def run(seed: int) -> int:
        with connect(target, timeout=60) as own:
            traces = Traces(own)
            barrier.wait(WAIT_S)
            return sum(traces.log(exp, *batch).span_count for batch in _batches(seed))

    with ThreadPoolExecutor(THREADS) as pool:
        sent = sum(pool.map(run, range(THREADS)))
    assert sent == THREADS * BATCHES * (3 + 2 * SPANS_PER_BATCH)
    assert conflicts == [], f"{len(conflicts)} write transactions hit a conflict"
    expected = 2 + THREADS * BATCHES * SPANS_PER_BATCH
    assert count_rows(database, "spans", f"trace_id = '{tid(1)}'") == expected
    for trace_id, total in ((tid(1), expected), (tid(2), expected - 1)):
        trace = tr.get(trace_id)
        assert len(trace.spans) == total and len({s.span_id for s in trace.spans}) == total
        assert stored_aggregates(trace.info) == recomputed(trace.spans), trace_id
        assert trace.info.state == TRACE_OK


def test_a_delete_waiting_on_a_span_write_deletes_what_it_wrote(client: Client, database: Database) -> None:
    """Spans have no foreign key to their trace: DeleteTraces deletes them under the trace
    rows' locks, which a span write holds until commit, so spans committed while the delete
    waits are not left behind; another trace's spans stay."""
    tr = Traces(client)
    exp = tr.experiment("delete-raced")
    doomed, kept = tid(71), tid(72)
    tr.log(exp, span(doomed, sid(1)), span(kept, sid(1)))
    with database.engine.connect() as conn:
        tx = conn.begin()
        lock = "SELECT trace_id FROM traces WHERE trace_id = :t"
        conn.execute(sa.text(lock + (" FOR NO KEY UPDATE" if conn.dialect.name == "postgresql" else "")), {"t": doomed})
        columns = [c.name for c in SpanRow.__table__.columns]
        copied = ", ".join(":s" if c == "span_id" else c for c in columns)
        insert = f"INSERT INTO spans ({', '.join(columns)}) SELECT {copied} FROM spans WHERE trace_id = :t"
        conn.execute(sa.text(insert), {"t": doomed, "s": sid(2)})  # a LogSpans's write, not yet committed
        deleted: list[int] = []
        deleting = threading.Thread(target=lambda: deleted.append(tr.delete(exp, trace_ids=[doomed])))
        deleting.start()
        deleting.join(0.5)
        assert deleting.is_alive()  # waiting for the trace row's lock
        tx.commit()
    deleting.join(30)
    assert not deleting.is_alive() and deleted == [1]
    with database.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT trace_id, count(*) FROM spans GROUP BY trace_id"))
        assert dict(left.all()) == {kept: 1}
    assert count_rows(database, "traces", f"trace_id = '{doomed}'") == 0
