"""Open-loop and closed-loop drivers, and the live progress line.

Open loop (``--rate``): arrival times are drawn up front from the rate alone (Poisson: exponential
gaps; fixed: equal gaps) and each arrival is launched at its time whatever the earlier calls
are doing, as real users would. That is what makes latency under load honest: a closed-loop
generator slows down with the server and so hides queueing ("coordinated omission"). At most
``concurrency`` operations are in flight; an arrival that finds no free slot is not sent and is
counted as *late* — never silently skipped, never waited for (waiting would let the server
set the pace again). Closed loop (no ``--rate``): ``concurrency`` callers each run one
operation after another, which measures the most the server sustains at that concurrency.
"""

from __future__ import annotations

import asyncio
import random
import sys
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any, Protocol, TextIO

from loadtest.stats import Recorder, percentile

Launch = Callable[[], Coroutine[Any, Any, None]]
Clock = Callable[[], float]


class ArrivalSink(Protocol):
    def arrival(self, at: float, late: bool, lag_s: float = 0.0) -> None: ...


@dataclass(frozen=True)
class LoopStats:
    """What a driver did overall (warm-up included)."""

    arrivals: int  # open loop: arrivals scheduled; closed loop: operations run
    started: int  # operations launched
    late: int  # open loop: arrivals that found no free slot
    schedule_s: float  # time from the start to the last arrival decision (before the drain)


def gaps(rate: float, poisson: bool, rng: random.Random) -> Callable[[], float]:
    """Inter-arrival times for ``rate`` arrivals per second."""
    if poisson:
        return lambda: rng.expovariate(rate)
    return lambda: 1.0 / rate


async def open_loop(
    launch: Launch,
    *,
    rate: float,
    duration_s: float,
    concurrency: int,
    sink: ArrivalSink,
    poisson: bool = True,
    rng: random.Random | None = None,
    clock: Clock = time.perf_counter,
) -> LoopStats:
    """Launch ``launch()`` at ``rate`` per second for ``duration_s``, at most ``concurrency`` at once."""
    gap = gaps(rate, poisson, rng or random.Random())
    start = clock()
    due = start
    tasks: set[asyncio.Task[None]] = set()
    arrivals = started = late = 0
    while True:
        due += gap()
        if due - start >= duration_s:
            break
        delay = due - clock()
        await asyncio.sleep(max(0.0, delay))  # behind schedule: still yield, so finished calls free their slots
        arrivals += 1
        full = len(tasks) >= concurrency
        sink.arrival(due, full, max(0.0, -delay))
        if full:
            late += 1
            continue
        started += 1
        task = asyncio.create_task(launch())
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    schedule_s = clock() - start
    if tasks:
        await asyncio.gather(*tasks)  # let the last calls finish: their latencies count
    return LoopStats(arrivals, started, late, schedule_s)


async def closed_loop(
    launch: Launch, *, duration_s: float, concurrency: int, clock: Clock = time.perf_counter
) -> LoopStats:
    """``concurrency`` callers, each launching the next operation when the last one ends."""
    end = clock() + duration_s

    async def caller() -> int:
        done = 0
        while clock() < end:
            await launch()
            done += 1
        return done

    counts = await asyncio.gather(*(caller() for _ in range(concurrency)))
    return LoopStats(sum(counts), sum(counts), 0, duration_s)


class Progress:
    """One line on stderr per second: elapsed, calls/s, errors, late arrivals, p99 of the last second.

    On a terminal the line is rewritten in place; elsewhere (CI logs) one line per second.
    """

    def __init__(self, recorder: Recorder, started: float, total_s: float, stream: TextIO = sys.stderr) -> None:
        self._recorder = recorder
        self._started = started
        self._total_s = total_s
        self._stream = stream
        self._tty = stream.isatty()
        self._errors = 0
        self._unexpected = 0

    def line(self, elapsed_s: float, interval_s: float) -> str:
        live = self._recorder.take_live()
        self._errors += sum(live.errors.values())
        self._unexpected += sum(n for code, n in live.errors.items() if code not in self._recorder.expected)
        p99 = percentile(sorted(live.latencies_ms), 0.99)
        warmup_s = self._recorder.window_start - self._started
        phase = "warm-up" if elapsed_s - interval_s < warmup_s - 1e-3 else "measuring"  # the second just ended
        p99_text = "-" if p99 is None else f"{p99:.1f} ms"
        return (
            f"[{elapsed_s:5.0f}/{self._total_s:.0f} s {phase}] {live.calls / interval_s:8.1f} calls/s"
            f"  errors {self._errors} (unexpected {self._unexpected})  late {self._recorder.late}  p99 {p99_text}"
        )

    async def run(self, clock: Clock = time.perf_counter) -> None:
        """Print until cancelled."""
        started = last = self._started
        try:
            while True:
                await asyncio.sleep(1.0 - (clock() - started) % 1.0)
                now = clock()
                self._write(self.line(now - started, now - last))
                last = now
        finally:
            if self._tty:
                self._stream.write("\n")
                self._stream.flush()

    def _write(self, text: str) -> None:
        self._stream.write(f"\r{text}\x1b[K" if self._tty else f"{text}\n")
        self._stream.flush()
