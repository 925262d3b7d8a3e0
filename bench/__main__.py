"""``python -m bench`` (``make bench``): run the workloads, print a table and the targets, write JSON.

Each backend pass gets a fresh database and freshly started servers (``bench.runner``). On a
shared 2-core machine numbers move by 20-30 % between identical runs even when nothing else
runs: compare figures taken in the same run (the echo ratio), use ``--repeat 3`` and longer
``--duration`` before deciding anything, and look at "other cores" (CPU other programs took
during the window; such windows are measured again up to ``--retries`` times).

Exit status: 0 when every selected workload ran without errors (missed targets are reported,
not failed: this is a benchmark, not a test), 1 when a workload had errors or a backend could
not be run.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
import traceback
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench.report import machine_info, ratios_text, table, targets_text
from bench.runner import Record, RunConfig, run_backend
from bench.suite import names
from bench.targets import evaluate, ratios
from server.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
BACKENDS = ("sqlite", "postgresql")


def _split(values: list[str]) -> list[str]:
    return [v for item in values for v in item.split(",") if v]


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__.split("\n\n")[0])
    p.add_argument("--backends", default=",".join(BACKENDS), help="comma-separated: sqlite,postgresql")
    p.add_argument("--duration", type=float, help="measured seconds per workload (default 5; --quick 0.5)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each window (default 1; --quick 0.2)")
    p.add_argument(
        "--only",
        nargs="+",
        default=[],
        metavar="WORKLOAD",
        help="names, globs or groups like get, search, create (see --list)",
    )
    p.add_argument("--json", type=Path, help="where to write the JSON (default bench/results/<timestamp>.json)")
    p.add_argument("--quick", action="store_true", help="short windows: a smoke run for CI (< 60 s)")
    p.add_argument("--seed", type=int, default=10_000, help="experiments seeded for SearchExperiments (default 10,000)")
    p.add_argument("--search-traces", type=int, help="traces seeded for SearchTraces (default 100,000; --quick 10,000)")
    p.add_argument(
        "--ingest-traces",
        type=int,
        help="traces per LogSpans/OTLP run, in calls of 100 traces × 10 spans (default 10,000; --quick 1,000)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=Settings().threads,
        help="request threads of our server and of the echo server (default: the server's default)",
    )
    p.add_argument(
        "--generator-procs",
        type=int,
        default=1,
        help="load generator processes (default 1: one saturates a one-process server on 2 cores; 2 only compete)",
    )
    p.add_argument("--channels-per-16", type=int, default=1, help="client connections per 16 callers")
    p.add_argument(
        "--quiet-wait",
        type=float,
        help="before each workload, wait up to this many seconds for the CPUs to be idle (default 20; --quick 0)",
    )
    p.add_argument(
        "--retries",
        type=int,
        help="measure a workload again when other programs used > 0.2 cores meanwhile (default 2; --quick 0)",
    )
    p.add_argument(
        "--repeat", type=int, default=1, help="runs per workload; the median-throughput one is reported (default 1)"
    )
    p.add_argument("--list", action="store_true", help="list the workload names and exit")
    args = p.parse_args(argv)
    args.only = _split(args.only)
    if args.duration is None:
        args.duration = 0.5 if args.quick else 5.0
    if args.retries is None:
        args.retries = 0 if args.quick else 2
    if args.quiet_wait is None:
        args.quiet_wait = 0.0 if args.quick else 20.0
    if args.warmup is None:
        args.warmup = 0.2 if args.quick else 1.0
    if args.search_traces is None:
        args.search_traces = 10_000 if args.quick else 100_000
    if args.ingest_traces is None:
        args.ingest_traces = 1_000 if args.quick else 10_000
    unknown = set(_split([args.backends])) - set(BACKENDS)
    if unknown:
        p.error(f"unknown backends: {', '.join(sorted(unknown))}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.list:
        print("\n".join(names()))
        return 0
    backends = _split([args.backends])
    cfg = RunConfig(
        duration_s=args.duration,
        warmup_s=args.warmup,
        seed_count=args.seed,
        threads=args.threads,
        generator_procs=args.generator_procs,
        channels_per_16=args.channels_per_16,
        only=tuple(args.only),
        quiet_wait_s=args.quiet_wait,
        retries=args.retries,
        repeat=max(1, args.repeat),
        search_traces=args.search_traces,
        ingest_traces=max(100, args.ingest_traces),
    )
    started = datetime.now(UTC)
    machine = machine_info(with_postgres="postgresql" in backends)
    if machine["background_busy_pct"] > 10:
        print(f"warning: the machine is {machine['background_busy_pct']}% busy before the run", file=sys.stderr)
    results: list[Record] = []
    passes: list[Record] = []
    failed = False

    def emit(record: Record) -> None:
        results.append(record)
        errs = f" errors={record['errors']}" if record["errors"] else ""
        p50, p99 = record["p50_ms"] or 0.0, record["p99_ms"] or 0.0
        print(
            f"[{record['backend']}] {record['workload']}: {record['calls_per_s']:,.0f}/s "
            f"p50 {p50:.2f} ms p99 {p99:.2f} ms{errs}",
            file=sys.stderr,
        )

    for backend in backends:
        t0 = time.perf_counter()
        try:
            info = run_backend(backend, cfg, emit)
        except Exception as exc:
            traceback.print_exc()
            info, failed = {"backend": backend, "failed": f"{type(exc).__name__}: {exc}"}, True
        info["seconds"] = round(time.perf_counter() - t0, 1)
        passes.append(info)
    verdicts, ratio_list = evaluate(results), ratios(results)
    print()
    print(table(results))
    if ratio_list:
        print()
        print(ratios_text(ratio_list))
    print()
    print(targets_text(verdicts))
    document: dict[str, Any] = {
        "started_at": started.isoformat(timespec="seconds"),
        "finished_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "argv": sys.argv[1:] if argv is None else argv,
        "config": {**asdict(cfg), "backends": backends, "quick": args.quick},
        "machine": machine,
        "backends": passes,
        "results": results,
        "ratios": ratio_list,
        "targets": verdicts,
    }
    path = args.json or RESULTS_DIR / f"{started.strftime('%Y%m%dT%H%M%SZ')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document, indent=2) + "\n")
    print(f"\nJSON: {path}")
    errors = any(r["errors"] for r in results)
    return 1 if failed or errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
