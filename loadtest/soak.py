"""``python -m loadtest.soak`` (``make soak``): a long run of the ``mix`` scenario, checked for drift.

A server with ``--workers`` processes (default 2) on PostgreSQL takes the ``mix`` scenario in
open loop for ``--duration`` seconds after ``--warmup`` (``loadtest.cli.execute``). Three checks:

* **errors**: no call failed with a status code the scenario does not expect (the load
  generator's own verdict), and some calls ran;
* **latency drift**: the p99 of the calls that started in the last window is at most
  ``P99_RATIO_MAX`` times the p99 of the first window. A window is a tenth of the measured
  run, at least ``WINDOW_MIN_S`` and at most ``WINDOW_MAX_S`` seconds (the first and last
  minute of the default 10 minutes; 5 s of a 20 s CI run);
* **memory growth**: the sum of the resident set sizes (``VmRSS``) of the worker processes
  is sampled about once a second; *after warm-up* is the median of the samples of the first
  ``RSS_SPAN_S`` seconds of the window, *at end* the median of the samples of its last
  ``RSS_SPAN_S`` seconds (medians: one sample caught mid-allocation moves neither), and
  growth = (at end − after warm-up) / after warm-up must be at most ``RSS_GROWTH_MAX_PCT``.

It prints the load generator's per-method table, then the soak figures, writes a JSON report
(``--report``; the load generator's report is under ``load``, the memory samples under
``rss_samples``) and exits 1 when a check fails, 2 when the server or the setup fails. Without
``--database-url`` the database is ``mlgenai_soak`` on the local PostgreSQL, dropped, created
and migrated at the start (and kept afterwards, to look at).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import sqlalchemy as sa

from bench.databases import create_postgres_database, migrate
from bench.procstat import Sampler, Snapshot, Usage, rss_kb
from loadtest.cli import Config, SetupError, execute
from loadtest.report import Report, format_table, write_json
from loadtest.stats import Recorder
from server.childproc import ServerProcess

SCENARIO = "mix"
SOAK_DATABASE = "mlgenai_soak"
RESULTS_DIR = Path(__file__).resolve().parents[1] / "bench" / "results"  # ignored by git
WINDOW_SHARE, WINDOW_MIN_S, WINDOW_MAX_S = 0.1, 5, 60
RSS_SPAN_S = 5.0
SAMPLE_EVERY_S = 1.0
P99_RATIO_MAX = 1.5
RSS_GROWTH_MAX_PCT = 10.0
# Measured on the 2-core development machine (server, PostgreSQL and generator on it): 2 workers
# ran mix closed loop at ~290 operations/s (~300 calls/s) with every core busy. At 100/s the
# server takes ~31% of a core, PostgreSQL ~18%, the generator ~9%: a third of what the machine
# sustains, so queueing does not build up by itself and the drift check sees the server age.
DEFAULT_RATE = 100.0
DEFAULT_CONCURRENCY = 32


@dataclass(frozen=True)
class SoakConfig:
    duration_s: int = 600
    warmup_s: int = 30
    rate: float | None = DEFAULT_RATE
    concurrency: int = DEFAULT_CONCURRENCY
    workers: int = 2
    threads: int | None = None  # request threads per worker; None: the server's default
    database_url: str | None = None
    report: Path | None = None
    seed: int | None = None
    progress: bool = True
    max_p99_ratio: float = P99_RATIO_MAX


@dataclass(frozen=True)
class RssSample:
    t_s: float  # seconds from the start of the measured window (negative during warm-up)
    rss_kb: int  # sum over the worker processes
    pids: tuple[int, ...]


@dataclass(frozen=True)
class Sample:
    rss: RssSample
    cpu: Snapshot  # CPU time so far of the server, generator, database and machine


# -- what is computed (pure) -------------------------------------------------------------------


def windows(duration_s: int) -> tuple[tuple[int, int], tuple[int, int]]:
    """The first and the last window of the measured run, in whole seconds from its start."""
    width = int(min(max(duration_s * WINDOW_SHARE, WINDOW_MIN_S), WINDOW_MAX_S, duration_s / 2))
    width = max(width, 1)
    return (0, width), (duration_s - width, duration_s)


def rss_growth(samples: Sequence[RssSample], duration_s: float, span_s: float = RSS_SPAN_S) -> dict[str, Any]:
    """Median RSS of the first and last ``span_s`` seconds of the window, and the growth in percent.

    The end span also takes the samples of the drain after the window (the last calls ending).
    """
    span_s = min(span_s, duration_s / 4)
    first = [s.rss_kb for s in samples if 0 <= s.t_s < span_s]
    last = [s.rss_kb for s in samples if s.t_s >= duration_s - span_s]
    if not first or not last:
        return {"after_warmup_mib": None, "end_mib": None, "growth_pct": None, "samples": len(samples)}
    start, end = statistics.median(first) / 1024, statistics.median(last) / 1024
    return {
        "after_warmup_mib": round(start, 1),
        "end_mib": round(end, 1),
        "growth_pct": round(100 * (end - start) / start, 2),
        "peak_mib": round(max(s.rss_kb for s in samples if s.t_s >= 0) / 1024, 1),
        "samples": len(samples),
        "worker_pids": sorted({pid for s in samples for pid in s.pids}),
    }


def p99_drift(first: dict[str, Any], last: dict[str, Any]) -> float | None:
    """last p99 / first p99 (None when a window has no successful call)."""
    if first["p99_ms"] is None or last["p99_ms"] is None or first["p99_ms"] <= 0:
        return None
    return round(float(last["p99_ms"]) / float(first["p99_ms"]), 3)


def cpu_between(samples: Sequence[Sample], start_s: float, end_s: float) -> dict[str, float] | None:
    """CPU use over [start_s, end_s] of the window, in percent of one core, from the samples
    nearest inside it: says whether other programs were busier in one window than in the other."""
    inside = [s for s in samples if start_s <= s.rss.t_s <= end_s + SAMPLE_EVERY_S]
    if len(inside) < 2:
        return None
    usage = Usage.between(inside[0].cpu, inside[-1].cpu)
    wall = max(usage.wall_s, 1e-9)
    cores = {"server": usage.server_s, "database": usage.database_s, "generator": usage.generator_s,
             "other": usage.other_s}  # fmt: skip
    return {
        **{f"{name}_pct": round(100 * seconds / wall, 1) for name, seconds in cores.items()},
        "machine_busy_pct": round(usage.machine_busy_pct, 1),
        "steal_pct": round(usage.steal_pct, 1),
    }


def checks(
    load: Report, ratio: float | None, growth_pct: float | None, max_ratio: float = P99_RATIO_MAX
) -> list[dict[str, Any]]:
    """The three verdicts, each with what was measured and the limit."""
    totals = load["totals"]
    return [
        {"check": "errors", "ok": load["status"]["exit"] == 0, "value": totals["unexpected_errors"],
         "limit": 0, "why": load["status"]["why"]},
        {"check": "p99_drift", "ok": ratio is not None and ratio <= max_ratio, "value": ratio,
         "limit": max_ratio, "why": "last-window p99 / first-window p99"},
        {"check": "rss_growth", "ok": growth_pct is not None and growth_pct <= RSS_GROWTH_MAX_PCT,
         "value": growth_pct, "limit": RSS_GROWTH_MAX_PCT, "why": "worker RSS, end vs after warm-up, %"},
    ]  # fmt: skip


def summarize(config: SoakConfig, load: Report, samples: Sequence[Sample]) -> Report:
    """The soak report: figures, checks, RSS samples and the load generator's report."""
    first, last = load["windows"]
    ratio = p99_drift(first, last)
    memory = rss_growth([s.rss for s in samples], config.duration_s)
    for window in (first, last):
        window["cpu"] = cpu_between(samples, window["start_s"], window["end_s"])
    totals = load["totals"]
    figures = {
        "first_window": first,
        "last_window": last,
        "p99_ratio": ratio,
        "rss": memory,
        "calls": totals["calls"],
        "errors": totals["errors"],
        "unexpected_errors": totals["unexpected_errors"],
        "calls_per_s": totals["calls_per_s"],
        "arrivals": totals["arrivals"],
        "late": totals["late"],
    }
    verdicts = checks(load, ratio, memory["growth_pct"], config.max_p99_ratio)
    settings = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(config).items()}
    return {
        "config": settings,
        "finished_at": datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds"),
        "figures": figures,
        "checks": verdicts,
        "ok": all(c["ok"] for c in verdicts),
        "rss_samples": [asdict(s.rss) for s in samples],
        "load": load,
    }


def format_summary(report: Report) -> str:
    f, config = report["figures"], report["config"]
    first, last, rss = f["first_window"], f["last_window"], f["rss"]
    verdict = {c["check"]: "ok" if c["ok"] else "FAIL" for c in report["checks"]}

    def ms(value: float | None) -> str:
        return "-" if value is None else f"{value:.1f}"

    def cpu(window: dict[str, Any]) -> str:
        return "-" if window.get("cpu") is None else f"{window['cpu']['other_pct']:.0f}"

    errors = ", ".join(f"{code} {n}" for code, n in f["errors"].items()) or "0"
    rows = [
        (f"p99 first window ({first['start_s']}-{first['end_s']} s), ms", ms(first["p99_ms"]), ""),
        (f"p99 last window ({last['start_s']}-{last['end_s']} s), ms", ms(last["p99_ms"]), ""),
        ("p99 ratio last/first", ms(f["p99_ratio"]) if f["p99_ratio"] is None else f"{f['p99_ratio']:.2f}",
         f"<= {config['max_p99_ratio']:g}  {verdict['p99_drift']}"),
        ("worker RSS after warm-up, MiB", ms(rss["after_warmup_mib"]), ""),
        ("worker RSS at end, MiB", ms(rss["end_mib"]), ""),
        ("RSS growth, %", ms(rss["growth_pct"]), f"<= {RSS_GROWTH_MAX_PCT:g}  {verdict['rss_growth']}"),
        ("calls", str(f["calls"]), ""),
        ("errors by code", errors, f"unexpected {f['unexpected_errors']}  {verdict['errors']}"),
        ("throughput, calls/s", f"{f['calls_per_s']:.1f}", ""),
        ("late arrivals (not sent)", f"{f['late']} of {f['arrivals']}", ""),
        ("CPU of other programs, first/last window", f"{cpu(first)} / {cpu(last)}", "% of a core"),
    ]  # fmt: skip
    widths = [max(len(r[i]) for r in rows) for i in range(2)]
    lines = [f"{a.ljust(widths[0])}  {b.rjust(widths[1])}  {c}".rstrip() for a, b, c in rows]
    load = f"open loop {config['rate']:g}/s" if config["rate"] is not None else "closed loop"
    head = (f"soak: {SCENARIO}, {config['workers']} workers, {load}, concurrency {config['concurrency']},"
            f" {config['duration_s']} s after {config['warmup_s']} s warm-up")  # fmt: skip
    failed = [c["check"] for c in report["checks"] if not c["ok"]]
    tail = "soak: PASS" if not failed else "soak: FAIL (" + ", ".join(failed) + ")"
    return "\n".join([head, "-" * len(head), *lines, tail])


# -- running it ----------------------------------------------------------------------------------


def fresh_database(name: str = SOAK_DATABASE) -> str:
    """Drop and create ``name`` on the local PostgreSQL, migrate it, and return its URL (kept
    after the run, to be looked at)."""
    url = create_postgres_database(name)
    migrate(url)
    return url


def take_sample(server: ServerProcess, sampler: Sampler, window_start: float) -> Sample:
    assert server.proc is not None
    pids = server.worker_pids() or [server.proc.pid]  # one worker: the server process serves
    rss = rss_kb(pids)
    cpu = sampler.snapshot()
    return Sample(RssSample(round(cpu.t_ns / 1e9 - window_start, 3), rss, tuple(pids)), cpu)


async def sample(server: ServerProcess, database: str, recorder: Recorder, out: list[Sample]) -> None:
    """Append a sample to ``out`` about once a second, until cancelled (read in a thread: reading
    /proc takes a few ms, which would otherwise stall the calls' event loop)."""
    assert server.proc is not None
    sampler = Sampler(server.proc.pid, [os.getpid()], "postgres", f" {database} ")
    while True:
        out.append(await asyncio.to_thread(take_sample, server, sampler, recorder.window_start))
        await asyncio.sleep(SAMPLE_EVERY_S)


def run_soak(config: SoakConfig) -> Report:
    """Start the server, run the load beside the memory sampler, and return the soak report."""
    url = config.database_url
    if url is None:
        url = fresh_database()
    else:
        migrate(url)
    report_path = config.report or RESULTS_DIR / f"soak-{time.strftime('%Y%m%d-%H%M%S')}.json"
    extra = () if config.threads is None else ("--threads", str(config.threads))
    samples: list[Sample] = []
    report_path.parent.mkdir(parents=True, exist_ok=True)
    with ServerProcess(url, *extra, workers=config.workers, log_path=report_path.with_suffix(".server.log")) as srv:
        load_config = Config(
            target=srv.target,
            scenario=SCENARIO,
            concurrency=config.concurrency,
            rate=config.rate,
            duration_s=config.duration_s,
            warmup_s=config.warmup_s,
            seed=config.seed,
            progress=config.progress,
            windows=windows(config.duration_s),
        )

        async def beside(recorder: Recorder) -> None:
            await sample(srv, str(sa.make_url(url).database), recorder, samples)

        load = asyncio.run(execute(load_config, beside))
    report = summarize(config, load, samples)
    report["report_path"] = str(report_path)
    write_json(report, report_path)
    return report


def parse_args(argv: Sequence[str] | None) -> SoakConfig:
    d = SoakConfig()
    p = argparse.ArgumentParser(prog="python -m loadtest.soak", description=__doc__.split("\n\n")[0] if __doc__ else "")
    p.add_argument("--duration", type=int, default=d.duration_s, help="measured seconds (default %(default)s)")
    p.add_argument("--warmup", type=int, default=d.warmup_s, help="seconds before, not measured (default %(default)s)")
    p.add_argument("--rate", type=float, default=d.rate, help="operations/s, open loop (default %(default)s)")
    p.add_argument("--closed-loop", action="store_true", help="no --rate: --concurrency callers back to back")
    p.add_argument("--concurrency", type=int, default=d.concurrency, help="in flight at most (default %(default)s)")
    p.add_argument("--workers", type=int, default=d.workers, help="server processes (default %(default)s)")
    p.add_argument("--threads", type=int, help="request threads per worker (default: the server's)")
    p.add_argument("--database-url", help=f"default: {SOAK_DATABASE} on the local PostgreSQL, re-created")
    p.add_argument("--report", type=Path, help="JSON report (default bench/results/soak-<time>.json)")
    p.add_argument("--seed", type=int, help="random seed")
    p.add_argument("--no-progress", action="store_true", help="no line per second on stderr")
    p.add_argument(
        "--max-p99-ratio", type=float, default=d.max_p99_ratio, help="p99 drift limit, last/first (default %(default)s)"
    )
    a = p.parse_args(argv)
    if a.duration < 4 or a.warmup < 0 or a.concurrency < 1 or a.workers < 1 or (a.rate is not None and a.rate <= 0):
        p.error("--duration >= 4, --warmup >= 0, --concurrency, --workers >= 1, --rate > 0")
    return SoakConfig(
        duration_s=a.duration,
        warmup_s=a.warmup,
        rate=None if a.closed_loop else a.rate,
        concurrency=a.concurrency,
        workers=a.workers,
        threads=a.threads,
        database_url=a.database_url,
        report=a.report,
        seed=a.seed,
        progress=not a.no_progress,
        max_p99_ratio=a.max_p99_ratio,
    )


def main(argv: Sequence[str] | None = None) -> int:
    config = parse_args(argv)
    try:
        report = run_soak(config)
    except (SetupError, RuntimeError, TimeoutError) as exc:
        print(f"soak: setup failed: {exc}", file=sys.stderr)
        return 2
    print(format_table(report["load"]))
    print()
    print(format_summary(report))
    print(f"report: {report['report_path']}")
    return 0 if report["ok"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
