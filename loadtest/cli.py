"""``python -m loadtest``: the command line, and ``run`` / ``main`` for callers in Python.

Exit status: 0 when every call of the window succeeded or failed only with a status code the
scenario expects (``--expect`` adds more), 1 when any other error happened or no call ended
in the window (so CI can gate on it), 2 when the setup or the arguments failed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime
import itertools
import random
import sys
import time
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import grpc

from loadtest.calls import Calls
from loadtest.report import Report, format_table, write_json, write_plot
from loadtest.scenarios import SCENARIOS, Scenario, Step, make
from loadtest.scheduler import Launch, LoopStats, Progress, closed_loop, open_loop
from loadtest.stats import Recorder

Beside = Callable[[Recorder], Coroutine[Any, Any, None]]
# A channel of its own per connection: without a local subchannel pool, channels with the same
# options share one TCP connection, and a server's SO_REUSEPORT workers are chosen per connection.
CHANNEL_OPTIONS = [
    ("grpc.max_receive_message_length", -1),
    ("grpc.max_send_message_length", -1),
    ("grpc.use_local_subchannel_pool", 1),
]


class SetupError(Exception):
    """The server could not be reached, or the scenario could not create what it needs."""


@dataclass(frozen=True)
class Config:
    target: str = "127.0.0.1:50051"
    scenario: str = "mix"
    concurrency: int = 64
    connections: int = 8  # HTTP/2 connections the operations are spread over, round-robin
    rate: float | None = None  # operations per second (open loop); None: closed loop
    arrivals: str = "poisson"  # or "fixed": the inter-arrival times of the open loop
    duration_s: float = 60.0
    warmup_s: float = 5.0
    timeout_s: float = 30.0  # per call
    connect_timeout_s: float = 10.0
    seed: int | None = None
    expect: tuple[str, ...] = ()  # status code names that are not failures
    report: Path | None = None
    plot: Path | None = None
    progress: bool = True
    windows: tuple[tuple[int, int], ...] = ()  # [start, end) seconds of the window: figures under "windows"


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m loadtest", description="Load generator for a running mlgenai server.")
    p.add_argument("--target", default=Config.target, help="server address host:port (default %(default)s)")
    p.add_argument("--scenario", choices=sorted(SCENARIOS), default=Config.scenario, help="default %(default)s")
    p.add_argument("--concurrency", type=int, default=Config.concurrency, help="operations in flight at most")
    p.add_argument(
        "--connections",
        type=int,
        default=Config.connections,
        help="connections to the server, used in turn (default %(default)s): a server's worker processes"
        " are chosen per connection, so one connection reaches one worker",
    )
    p.add_argument(
        "--rate", type=float, help="operations/s, open loop; omitted: closed loop with --concurrency callers"
    )
    p.add_argument("--arrivals", choices=("poisson", "fixed"), default=Config.arrivals, help="inter-arrival times")
    p.add_argument("--duration", type=float, default=Config.duration_s, help="measured seconds (default %(default)s)")
    p.add_argument("--warmup", type=float, default=Config.warmup_s, help="seconds before, not measured")
    p.add_argument("--timeout", type=float, default=Config.timeout_s, help="deadline per call, seconds")
    p.add_argument(
        "--connect-timeout", type=float, default=Config.connect_timeout_s, help="seconds to reach the server"
    )
    p.add_argument("--seed", type=int, help="random seed (arrivals and step choices)")
    p.add_argument("--expect", action="append", default=[], metavar="CODE", help="a status code that is not a failure")
    p.add_argument("--report", type=Path, help="write the JSON report here")
    p.add_argument("--plot", type=Path, help="write a PNG of throughput and p99 over time here")
    p.add_argument("--no-progress", action="store_true", help="no live line on stderr")
    return p


def parse_args(argv: Sequence[str] | None) -> Config:
    parser = _parser()
    a = parser.parse_args(argv)
    positive = [a.duration, a.timeout, a.connect_timeout, *([] if a.rate is None else [a.rate])]
    if a.concurrency < 1 or a.connections < 1 or min(positive) <= 0 or a.warmup < 0:
        parser.error("--concurrency, --connections >= 1; --duration, --timeout, --rate > 0; --warmup >= 0")
    return Config(
        target=a.target,
        scenario=a.scenario,
        concurrency=a.concurrency,
        connections=a.connections,
        rate=a.rate,
        arrivals=a.arrivals,
        duration_s=a.duration,
        warmup_s=a.warmup,
        timeout_s=a.timeout,
        connect_timeout_s=a.connect_timeout,
        seed=a.seed,
        expect=tuple(code.upper() for code in a.expect),
        report=a.report,
        plot=a.plot,
        progress=not a.no_progress,
    )


def operation(pick: Callable[[], Step], connections: Sequence[Calls]) -> Launch:
    """One operation: a step drawn by weight, on the next connection in turn. Its gRPC failures
    are recorded by ``Calls``; any other exception (a bad answer, a bug in a step) is recorded
    too, never lost."""
    turn = itertools.cycle(connections)

    async def launch() -> None:
        step = pick()
        calls = next(turn)
        start = time.perf_counter()
        try:
            await step.run(calls)
        except grpc.aio.AioRpcError:
            pass
        except Exception as exc:
            calls.record_failure(step.name, exc, start)

    return launch


async def _setup(scenario: Scenario, channel: grpc.aio.Channel, config: Config) -> list[str]:
    try:
        await asyncio.wait_for(channel.channel_ready(), config.connect_timeout_s)
    except TimeoutError as exc:
        raise SetupError(f"no server at {config.target} within {config.connect_timeout_s:g} s") from exc
    try:
        lines = await scenario.setup(Calls(channel, None, config.timeout_s))
    except grpc.aio.AioRpcError as exc:
        raise SetupError(f"{exc.code().name}: {exc.details()}") from exc
    for line in lines:
        print(f"setup: {line}", file=sys.stderr)
    return lines


async def _drive(config: Config, launch: Launch, recorder: Recorder, rng: random.Random) -> LoopStats:
    total_s = config.warmup_s + config.duration_s
    if config.rate is None:
        return await closed_loop(launch, duration_s=total_s, concurrency=config.concurrency)
    return await open_loop(launch, rate=config.rate, duration_s=total_s, concurrency=config.concurrency,
                           sink=recorder, poisson=config.arrivals == "poisson", rng=rng)  # fmt: skip


async def execute(config: Config, beside: Beside | None = None) -> Report:
    """Set the scenario up, run the load, and return the report (not yet written anywhere).

    ``beside``, if given, runs alongside the load from its first arrival (warm-up included) until
    the last call ends, then is cancelled; it gets the recorder, whose ``window_start`` says when
    the measured window starts on the ``time.perf_counter`` clock (``loadtest.soak`` samples the
    server's memory this way).
    """
    scenario = make(config.scenario, random.Random(config.seed))
    arrivals = random.Random(None if config.seed is None else config.seed + 1)  # own stream: picks stay put
    async with contextlib.AsyncExitStack() as stack:
        channels = [
            await stack.enter_async_context(grpc.aio.insecure_channel(config.target, options=CHANNEL_OPTIONS))
            for _ in range(config.connections)
        ]
        setup = await _setup(scenario, channels[0], config)
        started = time.perf_counter()
        expected = scenario.expected_codes | frozenset(config.expect)
        recorder = Recorder(started, config.warmup_s, config.duration_s, expected)
        progress = Progress(recorder, started, config.warmup_s + config.duration_s)
        side = [progress.run()] if config.progress else []
        side += [beside(recorder)] if beside is not None else []
        tasks = [asyncio.create_task(coroutine) for coroutine in side]
        try:
            connections = [Calls(channel, recorder, config.timeout_s) for channel in channels]
            stats = await _drive(config, operation(scenario.picker(), connections), recorder, arrivals)
        finally:
            for task in tasks:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
    return build_report(config, scenario, setup, recorder, stats)


def build_report(config: Config, scenario: Scenario, setup: list[str], recorder: Recorder, stats: LoopStats) -> Report:
    totals = recorder.totals()
    unexpected = recorder.unexpected_errors()
    if unexpected:
        status = {"exit": 1, "why": "unexpected errors: " + ", ".join(f"{c} {n}" for c, n in unexpected.items())}
    elif totals["calls"] == 0:
        status = {"exit": 1, "why": "no call started in the measured window"}
    else:
        status = {"exit": 0, "why": "no unexpected errors"}
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    settings["expect"] = sorted(recorder.expected)
    settings["steps"] = {s.name: round(s.weight, 4) for s in scenario.steps()}
    windows = {"windows": [recorder.span_figures(a, b) for a, b in config.windows]} if config.windows else {}
    return {
        "config": settings,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "setup": setup,
        "totals": totals,
        "methods": recorder.method_figures(),
        "series": recorder.series(),
        "driver": asdict(stats),
        "status": status,
        **windows,
    }


def run(config: Config) -> Report:
    """Run a load test and write its report and plot where ``config`` says; returns the report."""
    report = asyncio.run(execute(config))
    if config.report is not None:
        write_json(report, config.report)
    if config.plot is not None:
        write_plot(report, config.plot)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    """The program: returns the exit status (see the module docstring)."""
    config = parse_args(argv)
    try:
        report = run(config)
    except SetupError as exc:
        print(f"loadtest: setup failed: {exc}", file=sys.stderr)
        return 2
    print(format_table(report))
    return int(report["status"]["exit"])
