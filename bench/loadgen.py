"""A closed-loop load generator over ``grpc.aio``.

``LoadGenerator(procs).run(target, op, spec, sampler)`` drives ``procs`` generator processes
(spawned once and reused; the benchmark process itself only sets the window and samples
``/proc`` for the server's CPU). For each run, each process opens its share of ``spec.channels``
channels (separate TCP connections: a local subchannel pool per channel, which also lets the
kernel spread them over ``--workers`` processes) and runs its share of ``spec.concurrency``
callers. A caller loops: call, wait for the answer, call again. Every process gets the same
absolute window (``perf_counter_ns`` is CLOCK_MONOTONIC, shared by all processes): calls
finishing during the warm-up are dropped, then calls finishing inside the window are counted.
Latency is taken per call with ``time.perf_counter_ns``; failures are counted by status code
(they are not part of the latency figures, and they are never hidden: see ``LoadResult.errors``).
With ``LoadSpec.calls`` the run is a fixed amount of work instead (ingesting a data set): the
callers share exactly that many calls, every one is measured, and the window is their time.

An ``Operation`` is what a caller does once (usually one unary call: ``bench.ops.Unary``); it
must pickle, since it crosses into the generator processes.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing
import time
from array import array
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field, replace
from multiprocessing.connection import Connection
from typing import Any, Protocol

import grpc

from bench.procstat import Sampler, Usage

Call = Callable[[int, int], Awaitable[object]]
"""One caller's action: ``call(caller_id, seq)``; raises ``grpc.aio.AioRpcError`` on failure.
``(caller_id, seq)`` pairs are unique across all runs of one ``LoadGenerator``."""

READY_TIMEOUT_S = 60.0
CALL_TIMEOUT_S = 30.0
SEQ_STRIDE = 1 << 40


class Operation(Protocol):
    def bind(self, channel: grpc.aio.Channel) -> Call: ...


@dataclass(frozen=True)
class LoadSpec:
    concurrency: int
    duration_s: float
    warmup_s: float
    channels: int = 1
    calls: int = 0  # > 0: exactly this many calls, all measured (no warm-up); the window is their time


@dataclass
class LoadResult:
    spec: LoadSpec
    procs: int
    latencies_ns: list[int]  # successful calls in the window, sorted
    errors: dict[str, int]  # status code name (or exception type) -> count in the window
    usage: Usage
    server_rss_peak_mb: float
    window_s: float  # the measured window: spec.duration_s, or the time a fixed number of calls took
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ok(self) -> int:
        return len(self.latencies_ns)

    @property
    def error_count(self) -> int:
        return sum(self.errors.values())

    @property
    def calls_per_s(self) -> float:
        """Successful calls per second of the measured window."""
        return self.ok / self.window_s if self.window_s > 0 else 0.0

    def percentile_ms(self, q: float) -> float | None:
        if not self.latencies_ns:
            return None
        rank = max(math.ceil(q * len(self.latencies_ns)) - 1, 0)
        return self.latencies_ns[rank] / 1e6

    def cpu_us_per_call(self, seconds: float) -> float | None:
        calls = self.ok + self.error_count
        return seconds * 1e6 / calls if calls else None

    def summary(self) -> dict[str, Any]:
        u = self.usage
        return {
            "concurrency": self.spec.concurrency,
            "channels": self.spec.channels,
            "generator_procs": self.procs,
            "duration_s": round(self.window_s, 3),
            "warmup_s": self.spec.warmup_s,
            "calls": self.ok + self.error_count,
            "ok": self.ok,
            "errors": dict(self.errors),
            "calls_per_s": round(self.calls_per_s, 1),
            **{f"{n}_ms": self.percentile_ms(q) for n, q in (("p50", 0.5), ("p90", 0.9), ("p99", 0.99), ("max", 1.0))},
            "server_cpu_us_per_call": self.cpu_us_per_call(u.server_s),
            "generator_cpu_us_per_call": self.cpu_us_per_call(u.generator_s),
            "postgres_cpu_us_per_call": self.cpu_us_per_call(u.database_s),
            "server_cpu_cores": u.server_s / u.wall_s,
            "generator_cpu_cores": u.generator_s / u.wall_s,
            "postgres_cpu_cores": u.database_s / u.wall_s,
            "other_cpu_cores": u.other_s / u.wall_s,
            "machine_busy_pct": round(u.machine_busy_pct, 1),
            "steal_pct": round(u.steal_pct, 1),
            "server_rss_peak_mb": round(self.server_rss_peak_mb, 1),
            **self.extra,
        }


async def _caller(
    call: Call, caller: int, seq: int, t_start: int, t_end: int, lat: array[int], errs: Counter[str], left: list[int]
) -> None:
    """Call until ``t_end`` or until ``left`` (calls left, shared by this process's callers) is spent."""
    clock = time.perf_counter_ns
    while left[0] > 0:
        left[0] -= 1
        code = ""
        t0 = clock()
        try:
            await call(caller, seq)
        except grpc.aio.AioRpcError as exc:
            code = exc.code().name
        except Exception as exc:  # a bug in an operation must show up, not stop the run
            code = type(exc).__name__
        t1 = clock()
        seq += 1
        if t1 >= t_end:
            return
        if t1 >= t_start:
            if code:
                errs[code] += 1
            else:
                lat.append(t1 - t0)


async def _generate(
    target: str, op: Operation, callers: Sequence[int], channels: int, first_seq: int, calls: int, conn: Connection
) -> None:
    """One job in a generator process: connect, say ready, get the window, run, send results."""
    options = [("grpc.use_local_subchannel_pool", 1), ("grpc.max_receive_message_length", -1)]
    chans = [grpc.aio.insecure_channel(target, options=options) for _ in range(channels)]
    try:
        for ch in chans:
            await asyncio.wait_for(ch.channel_ready(), READY_TIMEOUT_S)
        binds = [op.bind(ch) for ch in chans]
        conn.send("ready")
        t_start, t_end = conn.recv()
        lat: array[int] = array("q")
        errors: Counter[str] = Counter()
        left = [calls or 1 << 62]
        await asyncio.gather(
            *(
                _caller(binds[i % channels], cid, first_seq, t_start, t_end, lat, errors, left)
                for i, cid in enumerate(callers)
            )
        )
        conn.send((lat.tobytes(), dict(errors), time.perf_counter_ns()))
    finally:
        for ch in chans:
            await ch.close()


def _child_main(conn: Connection) -> None:
    """A generator process: run jobs ``(target, op, callers, channels, first_seq, calls)`` until it gets None."""
    while (job := conn.recv()) is not None:
        target, op, callers, channels, first_seq, calls = job
        try:
            asyncio.run(_generate(target, op, callers, channels, first_seq, calls, conn))
        except Exception as exc:
            conn.send(f"error: {type(exc).__name__}: {exc}")


def _sleep_until(t_ns: int) -> None:
    delay = (t_ns - time.perf_counter_ns()) / 1e9
    if delay > 0:
        time.sleep(delay)


class LoadGenerator:
    """``procs`` generator processes, spawned once and reused by every ``run``."""

    def __init__(self, procs: int = 1) -> None:
        self.procs = max(1, procs)
        self._children: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []
        self._jobs = 0  # seq numbers start at jobs * SEQ_STRIDE: (caller, seq) never repeats

    def _start(self) -> None:
        ctx = multiprocessing.get_context("spawn")
        for i in range(self.procs):
            parent, child = ctx.Pipe()
            proc = ctx.Process(target=_child_main, args=(child,), daemon=True, name=f"loadgen-{i}")
            proc.start()
            self._children.append((proc, parent))

    def close(self) -> None:
        for proc, conn in self._children:
            if proc.is_alive():
                with contextlib.suppress(OSError):
                    conn.send(None)
        for proc, _ in self._children:
            proc.join(5)
            if proc.is_alive():
                proc.kill()
                proc.join()
        self._children = []

    def __enter__(self) -> LoadGenerator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _recv(self, i: int, timeout: float, what: str) -> Any:
        proc, conn = self._children[i]
        deadline = time.monotonic() + timeout
        while not conn.poll(0.2):
            if not proc.is_alive():
                raise RuntimeError(f"generator process exited with {proc.exitcode} before sending its {what}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"generator process: no {what} within {timeout:.0f} s")
        message = conn.recv()
        if isinstance(message, str) and message.startswith("error:"):
            raise RuntimeError(f"generator process failed: {message}")
        return message

    def run(self, target: str, op: Operation, spec: LoadSpec, sampler: Sampler) -> LoadResult:
        """Run ``op`` closed-loop against ``target``; ``sampler`` says which server (and database) to watch."""
        if not self._children:
            self._start()
        try:
            return self._run(target, op, spec, sampler)
        except BaseException:
            self.close()  # children may be mid-job: start afresh next time
            raise

    def _run(self, target: str, op: Operation, spec: LoadSpec, sampler: Sampler) -> LoadResult:
        n = len(self._children)
        self._jobs += 1
        given = 0  # callers given to the processes so far: a fixed count is shared out like them
        for i, (_, conn) in enumerate(self._children):
            share = list(range(i, spec.concurrency, n))
            channels = max(1, len(share) * spec.channels // spec.concurrency) if share else 0
            calls = spec.calls * (given + len(share)) // spec.concurrency - spec.calls * given // spec.concurrency
            given += len(share)
            conn.send((target, op, share, channels, self._jobs * SEQ_STRIDE, calls))
        for i in range(n):
            self._recv(i, READY_TIMEOUT_S, "ready signal")
        sampler = replace(sampler, generator_pids=[p.pid for p, _ in self._children if p.pid is not None])
        if spec.calls:  # every call counts: the window opens now and closes when the last one ends
            before = sampler.snapshot()
            t_start, t_end = before.t_ns, 1 << 62
        else:
            t_start = time.perf_counter_ns() + int(spec.warmup_s * 1e9)
            t_end = t_start + int(spec.duration_s * 1e9)
        for _, conn in self._children:
            conn.send((0 if spec.calls else t_start, t_end))
        if not spec.calls:
            _sleep_until(t_start)
            before = sampler.snapshot()
            _sleep_until(t_end)
            after = sampler.snapshot()
        lat: array[int] = array("q")
        errors: Counter[str] = Counter()
        finished: list[int] = []
        for i in range(n):
            raw, errs, t_done = self._recv(i, CALL_TIMEOUT_S * max(spec.calls, 1) + 30, "results")
            lat.frombytes(raw)
            errors.update(errs)
            finished.append(t_done)
        if spec.calls:
            after = sampler.snapshot()
            t_end = max(finished)
        usage = Usage.between(before, after)
        window_s = (t_end - t_start) / 1e9
        return LoadResult(spec, n, sorted(lat), dict(errors), usage, sampler.server_peak_rss_mb(), window_s)


def run_load(target: str, op: Operation, spec: LoadSpec, sampler: Sampler, procs: int = 1) -> LoadResult:
    """One run with its own generator processes."""
    with LoadGenerator(procs) as gen:
        return gen.run(target, op, spec, sampler)
