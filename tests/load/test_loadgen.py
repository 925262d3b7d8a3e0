"""The load generator (``python -m loadtest``): each scenario against a real server, and its parts.

The scenario tests run the program's entry point (``loadtest.main``) for about 2 s at a modest
open-loop rate against the in-process server of ``target`` (SQLite and PostgreSQL) and check
what a user relies on: every method of the scenario was called, nothing failed, the exit status
is 0, the JSON report has its sections and one point per second, and the plot is a PNG.
"""

from __future__ import annotations

import asyncio
import json
import random
from pathlib import Path

import pytest

from loadtest import main
from loadtest.cli import Config, build_report
from loadtest.report import format_table
from loadtest.scenarios import SCENARIOS, make
from loadtest.scheduler import LoopStats, closed_loop, open_loop
from loadtest.stats import Recorder

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
METHOD_KEYS = {"calls", "ok", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "calls_per_s"}
SERIES_KEYS = {"t_s", "calls", "errors", "late", "calls_per_s", "p99_ms"}
RATE, DURATION_S, WARMUP_S = 40, 2, 0.25


def _run(target: str, scenario: str, tmp_path: Path) -> tuple[int, dict[str, object], str, str]:
    report, plot = tmp_path / "report.json", tmp_path / "plot.png"
    argv = [
        "--target", target, "--scenario", scenario, "--rate", str(RATE), "--concurrency", "16",
        "--duration", str(DURATION_S), "--warmup", str(WARMUP_S), "--seed", "7",
        "--report", str(report), "--plot", str(plot), "--no-progress",
    ]  # fmt: skip
    status = main(argv)
    assert plot.read_bytes().startswith(PNG_SIGNATURE)
    return status, json.loads(report.read_text()), str(report), str(plot)


@pytest.mark.slow
@pytest.mark.parametrize("scenario", ["agent", "eval", "readers", "mix"])
def test_scenario_runs_clean(target: str, scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, report, _, _ = _run(target, scenario, tmp_path)
    out, err = capsys.readouterr()
    assert status == 0, (out, err)
    assert "setup: " in err and "total" in out  # the setup lines, then the table
    assert report["status"] == {"exit": 0, "why": "no unexpected errors"}

    methods = report["methods"]
    assert isinstance(methods, dict)
    expected = set(SCENARIOS[scenario].methods)
    if scenario == "mix":  # 80 operations: the rarest steps of a part may not come up
        assert set(methods) <= expected and len(methods) >= 8
    else:
        assert set(methods) == expected
    for name, figures in methods.items():
        assert set(figures) == METHOD_KEYS, name
        assert figures["calls"] == figures["ok"] > 0 and figures["errors"] == {}, name
        assert figures["p50_ms"] <= figures["p95_ms"] <= figures["p99_ms"] <= figures["max_ms"], name

    totals = report["totals"]
    assert isinstance(totals, dict)
    assert totals["errors"] == {} and totals["unexpected_errors"] == 0
    assert RATE * DURATION_S / 2 < totals["arrivals"] < RATE * DURATION_S * 2  # Poisson around 80
    assert totals["calls"] == sum(m["calls"] for m in methods.values())

    series = report["series"]
    assert isinstance(series, list) and [p["t_s"] for p in series] == list(range(DURATION_S))
    assert all(set(p) == SERIES_KEYS for p in series)
    assert sum(p["calls"] for p in series) == totals["calls"]

    config = report["config"]
    assert isinstance(config, dict)
    assert (config["scenario"], config["rate"], config["duration_s"], config["warmup_s"]) == (
        scenario, RATE, DURATION_S, WARMUP_S,
    )  # fmt: skip
    assert report["setup"] and report["driver"]["started"] + report["driver"]["late"] == report["driver"]["arrivals"]


def test_unreachable_server_is_exit_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--target", "127.0.0.1:1", "--connect-timeout", "0.3", "--duration", "1"]) == 2
    assert "setup failed" in capsys.readouterr().err


# -- the open-loop scheduler -------------------------------------------------------------------


class Sink:
    def __init__(self) -> None:
        self.arrivals: list[tuple[float, bool]] = []

    def arrival(self, at: float, late: bool, lag_s: float = 0.0) -> None:
        self.arrivals.append((at, late))


def test_open_loop_counts_arrivals_beyond_concurrency_as_late_without_waiting() -> None:
    """100/s for 1 s with 3 slots that stay busy until 2 s have passed: exactly 3 start, the
    rest are late, and the schedule ends before the slots free up (it never waits for one)."""
    in_flight, most = 0, 0

    async def run() -> LoopStats:
        release = asyncio.Event()
        asyncio.get_running_loop().call_later(2.0, release.set)

        async def held() -> None:
            nonlocal in_flight, most
            in_flight += 1
            most = max(most, in_flight)
            await release.wait()
            in_flight -= 1

        return await open_loop(held, rate=100, duration_s=1.0, concurrency=3, sink=sink, poisson=False)

    sink = Sink()
    stats = asyncio.run(run())

    assert 98 <= stats.arrivals <= 100 and len(sink.arrivals) == stats.arrivals
    assert most == 3 and stats.started == 3
    assert stats.late == stats.arrivals - stats.started == sum(late for _, late in sink.arrivals)
    assert stats.schedule_s < 2.0  # the schedule ended while every slot was still held
    times = [at for at, _ in sink.arrivals]
    assert times == sorted(times) and times[1] - times[0] == pytest.approx(0.01)


def test_open_loop_poisson_keeps_the_rate() -> None:
    async def instant() -> None:
        return None

    stats = asyncio.run(open_loop(instant, rate=400, duration_s=0.5, concurrency=4, sink=Sink(), rng=random.Random(1)))
    assert 140 < stats.arrivals < 260 and stats.started + stats.late == stats.arrivals


def test_closed_loop_keeps_concurrency_callers_busy() -> None:
    """2 callers for 0.3 s on a clock that each operation moves on by 0.025 s: 12 operations
    fit (a 13th may start at the last tick), never more than 2 at once, none late."""
    now, in_flight, most = [0.0], 0, 0

    async def op() -> None:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0)  # let the other caller start
        now[0] += 0.025
        in_flight -= 1

    stats = asyncio.run(closed_loop(op, duration_s=0.3, concurrency=2, clock=lambda: now[0]))
    assert most == 2 and 12 <= stats.started <= 13 and stats.late == 0


# -- figures and exit status -------------------------------------------------------------------


def test_warmup_is_excluded_and_unexpected_codes_fail_the_run() -> None:
    recorder = Recorder(started=100.0, warmup_s=1.0, duration_s=2.0, expected=frozenset({"NOT_FOUND"}))
    recorder.record("A/Get", 100.5, 100.6)  # warm-up: not counted
    recorder.record("A/Get", 101.2, 101.25)
    recorder.record("A/Get", 102.5, 102.6, "NOT_FOUND")  # expected
    recorder.arrival(102.7, late=True)
    methods = recorder.method_figures()
    assert methods["A/Get"]["calls"] == 2 and methods["A/Get"]["errors"] == {"NOT_FOUND": 1}
    assert methods["A/Get"]["p50_ms"] == pytest.approx(50.0)
    assert [(p["calls"], p["late"]) for p in recorder.series()] == [(1, 0), (1, 1)]

    scenario = make("readers", random.Random(0))
    stats = LoopStats(1, 0, 1, 2.0)
    report = build_report(Config(rate=10.0), scenario, [], recorder, stats)
    assert report["status"]["exit"] == 0
    assert "1 late" in format_table(report)
    recorder.record("A/Get", 102.8, 102.9, "INTERNAL")
    report = build_report(Config(rate=10.0), scenario, [], recorder, stats)
    assert report["status"] == {"exit": 1, "why": "unexpected errors: INTERNAL 1"}
