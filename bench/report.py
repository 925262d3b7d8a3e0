"""Printing the results table and the targets, and describing the machine for the JSON."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path
from typing import Any

from bench.databases import postgres_version
from bench.procstat import busy_pct

Record = dict[str, Any]
ROOT = Path(__file__).resolve().parents[1]

COLUMNS = (
    # header, width, key, format
    ("workload", 17, "workload", "{}"),
    ("backend", 10, "backend", "{}"),
    ("conc", 4, "concurrency", "{}"),
    ("calls/s", 8, "calls_per_s", "{:,.0f}"),
    ("p50 ms", 7, "p50_ms", "{:.2f}"),
    ("p99 ms", 7, "p99_ms", "{:.2f}"),
    ("errors", 6, "error_count", "{}"),
    ("srv µs/call", 11, "server_cpu_us_per_call", "{:.0f}"),
    ("pg µs/call", 10, "postgres_cpu_us_per_call", "{:.0f}"),
    ("gen µs/call", 11, "generator_cpu_us_per_call", "{:.0f}"),
    ("srv RSS MB", 10, "server_rss_peak_mb", "{:.0f}"),
    ("other cores", 11, "other_cpu_cores", "{:.2f}"),
)


def _cell(record: Record, key: str, fmt: str) -> str:
    value = sum(record["errors"].values()) if key == "error_count" else record.get(key)
    if value is None:
        return "-"
    if key == "postgres_cpu_us_per_call" and record["backend"] != "postgresql":
        return "-"
    if key == "other_cpu_cores" and record.get("noisy"):
        return "*" + fmt.format(value)
    if key == "calls_per_s" and value < 10:  # slow calls (ingestion, GetTrace of 10,000 spans)
        return f"{value:.1f}"
    return fmt.format(value)


def _align(cells: Sequence[str], first: int) -> str:
    """Two left-aligned text columns (the first ``first`` wide), then right-aligned numbers."""
    widths = [first] + [w for _, w, _, _ in COLUMNS[1:]]
    return "  ".join(f"{c:<{w}}" if i < 2 else f"{c:>{w}}" for i, (c, w) in enumerate(zip(cells, widths, strict=True)))


def table(results: Sequence[Record]) -> str:
    first = max([COLUMNS[0][1], *(len(r["workload"]) for r in results)])
    head = _align([h for h, _, _, _ in COLUMNS], first)
    lines = [head + "  what", "-" * (len(head) + 30)]
    for r in results:
        lines.append(_align([_cell(r, key, fmt) for _, _, key, fmt in COLUMNS], first) + "  " + _what(r))
    if any(r.get("noisy") for r in results):
        lines.append("*  other programs used CPU during this window on every attempt: compare with care")
    for r in results:
        if "stored_spans" in r:
            ok, sign = ("ok", "=") if r["stored_ok"] else ("!!", "≠")
            lines.append(
                f"{ok} {r['workload']} on {r['backend']}: {r['stored_spans']:,} spans stored {sign} "
                f"{r['acknowledged_calls']:,} acknowledged calls × {r['spans_per_call']:,}"
            )
    for r in results:
        if r["errors"]:
            codes = ", ".join(f"{code} ×{n}" for code, n in sorted(r["errors"].items()))
            problem = f" ({r['problem']})" if "problem" in r else ""
            lines.append(f"!! {r['workload']} on {r['backend']}: {codes}{problem}")
    return "\n".join(lines)


def _what(r: Record) -> str:
    what = f"{r['rpc']} ({r['note']})"
    if "rows_per_call" in r:
        what += f" → {r['rows_per_call']} rows"
    if "items_per_s" in r:
        what += f" → {r['items_per_s']:,.0f} {r['item']}/s"
    if "sweep" in r:
        what += " [" + ", ".join(f"c{c}: {v:,.0f}" for c, v in r["sweep"].items()) + f"; best c{r['concurrency']}]"
    return what


def ratios_text(ratios: Sequence[Record]) -> str:
    lines = ["Throughput ratios (same backend pass):"]
    lines += [f"  {r['backend']:<10}  {r['value']:6.2f}  {r['ratio']}" for r in ratios]
    return "\n".join(lines) if ratios else ""


def targets_text(verdicts: Sequence[Record]) -> str:
    lines = ["Targets (issues 2–5; binding on PostgreSQL, one server process):"]
    for v in sorted(verdicts, key=lambda v: (not v["binding"], v["backend"])):
        scope = "" if v["binding"] else "  (info)"
        errors = f", {v['errors']} errors" if v["errors"] else ""
        measured = f"{v['value']:,.2f} {v['unit']}"
        lines.append(f"  {v['verdict']:<4}  {v['backend']:<10}  {measured:>14}{errors}  {v['text']}{scope}")
    if not verdicts:
        lines.append("  (no target's workloads ran)")
    return "\n".join(lines)


def _version(dist: str) -> str | None:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return None


def machine_info(with_postgres: bool) -> Record:
    dirty = _git("status", "--porcelain")
    return {
        "cpu_count": os.cpu_count(),
        "cpu_model": _cpu_model(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "grpcio": _version("grpcio"),
        "protobuf": _version("protobuf"),
        "sqlalchemy": _version("sqlalchemy"),
        "psycopg": _version("psycopg"),
        "postgresql": postgres_version() if with_postgres else None,
        "git_commit": _git("rev-parse", "HEAD"),
        "git_dirty": bool(dirty) if dirty is not None else None,
        "loadavg": Path("/proc/loadavg").read_text().split()[:3],
        "background_busy_pct": round(busy_pct(1.0), 1),
    }
