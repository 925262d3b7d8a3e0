"""What every side of ``make bench-compare`` shares: the workload sizes, timing helpers and the
stored-row counter.

This module and ``payload.py`` are imported both by our driver (in this repository's virtual
environment) and by the peers' drivers, which run inside the peers' own virtual environments
(``python bench/compare/drive_mlflow.py``). So they import nothing but the standard library,
psycopg and opentelemetry-proto, which all three environments have.
"""

from __future__ import annotations

import json
import statistics
import sys
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg


@dataclass(frozen=True)
class Workload:
    """How much of each workload one side runs. Rates do not depend on the sizes much, but the
    sizes are the same for every side wherever a figure is compared (``search_corpus`` above all:
    each side searches an experiment of exactly that many traces)."""

    experiments: int = 100
    spans_per_trace: int = 10
    ingest_traces: int = 500
    traces_per_request: int = 50
    ingest_callers: int = 4
    search_corpus: int = 500
    search_queries: int = 40
    feedback: int = 400
    feedback_callers: int = 16
    records: int = 2000
    records_per_call: int = 100
    settle_s: float = 15.0  # ingestion is over when the stored count has not moved for this long
    extra: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Workload:
        return cls(**json.loads(text))


def emit(results: dict[str, Any]) -> None:
    """A driver's answer: one JSON line on stdout, prefixed so that log lines are ignored."""
    sys.stdout.write("RESULT " + json.dumps(results) + "\n")
    sys.stdout.flush()


def parse_result(stdout: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith("RESULT "):
            found: dict[str, Any] = json.loads(line[len("RESULT ") :])
            return found
    raise ValueError("the driver printed no RESULT line")


def p50_ms(samples_s: Sequence[float]) -> float:
    return statistics.median(samples_s) * 1000.0


def timed(fn: Callable[[], Any]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def run_callers(callers: int, jobs: Sequence[Any], work: Callable[[int, Any], object]) -> float:
    """``work(caller, job)`` for every job, from ``callers`` threads taking jobs in turn; the
    elapsed seconds. The first exception of any thread is raised after all have stopped."""
    lock = threading.Lock()
    queue = list(reversed(jobs))
    errors: list[BaseException] = []

    def loop(caller: int) -> None:
        while True:
            with lock:
                if errors or not queue:
                    return
                job = queue.pop()
            try:
                work(caller, job)
            except BaseException as exc:
                with lock:
                    errors.append(exc)
                return

    threads = [threading.Thread(target=loop, args=(i,), daemon=True) for i in range(callers)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - t0
    if errors:
        raise errors[0]
    return elapsed


class StoredCounter:
    """Counts rows in a peer's own database with one SQL statement: what it stored, whatever
    its API acknowledged."""

    def __init__(self, dsn: str, sql: str, params: Sequence[Any]) -> None:
        self.dsn = dsn
        self.sql = sql
        self.params = tuple(params)

    def __call__(self) -> int:
        with psycopg.connect(self.dsn, autocommit=True) as conn:
            row = conn.execute(self.sql, self.params).fetchone()
        return int(row[0]) if row else 0

    def until_settled(self, t0: float, expected: int, settle_s: float, poll_s: float = 0.25) -> tuple[int, float]:
        """Poll until ``expected`` rows are there, or the count has not moved for ``settle_s``.
        Returns the count and the seconds from ``t0`` (a ``perf_counter`` value) to the moment
        the last row was seen arriving."""
        last = self()
        last_change = time.perf_counter()
        while last < expected and time.perf_counter() - last_change < settle_s:
            time.sleep(poll_s)
            now = self()
            if now != last:
                last, last_change = now, time.perf_counter()
        return last, last_change - t0


def dataset_figures(w: Workload, merge_s: float, stored: int, read_all: Callable[[], int]) -> dict[str, Any]:
    """The dataset rows of a side: merge rate, records stored, and the rate of ``read_all``
    (which reads every record back and returns how many it got; all must come back)."""
    got: list[int] = []
    read_s = timed(lambda: got.append(read_all()))
    if got[0] != w.records:
        raise RuntimeError(f"read {got[0]} records, not {w.records}")
    return {
        "merge_records_per_s": w.records / merge_s,
        "records_stored": stored,
        "read_records_per_s": w.records / read_s,
    }
