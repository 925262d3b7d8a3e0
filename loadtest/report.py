"""The end of a run: the table on stdout, the JSON report (``--report``), the plot (``--plot``).

The JSON report is the record a CI job keeps and compares: ``config`` (how the load was
made), ``setup`` (what the scenario created), ``totals``, ``methods`` (per gRPC method),
``series`` (per second of the window: throughput, errors, late arrivals, p99) and ``status``
(the exit status and why).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

Report = dict[str, Any]
COLUMNS = ("calls", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms", "calls_per_s")


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, dict):
        return ", ".join(f"{code} {n}" for code, n in value.items()) or "0"
    if isinstance(value, float):
        return f"{value:.1f}"
    return str(value)


def format_table(report: Report) -> str:
    """One row per method and a total row, then the arrivals line of an open-loop run."""
    rows = [["method", "calls", "errors", "p50 ms", "p95 ms", "p99 ms", "max ms", "calls/s"]]
    for name, figures in [*report["methods"].items(), ("total", report["totals"])]:
        rows.append([name, *(_cell(figures[c]) for c in COLUMNS)])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(w) if i in (0, 2) else cell.rjust(w) for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        )
        for row in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    lines.insert(len(lines) - 1, "-" * len(lines[0]))
    totals, config = report["totals"], report["config"]
    if config["rate"] is not None:
        lines.append(
            f"open loop at {config['rate']:g}/s ({config['arrivals']}): {totals['arrivals']} arrivals,"
            f" {totals['late']} late (no free slot among {config['concurrency']}, not sent),"
            f" max schedule lag {totals['max_schedule_lag_ms']:.1f} ms"
        )
    else:
        lines.append(f"closed loop: {config['concurrency']} callers")
    lines.append(f"window {config['duration_s']:g} s after {config['warmup_s']:g} s warm-up; {report['status']['why']}")
    return "\n".join(lines)


def write_json(report: Report, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")


def write_plot(report: Report, path: Path) -> None:
    """Throughput (and errors) and p99 per second of the window, one panel each."""
    import matplotlib

    matplotlib.use("Agg")  # no display: CI machines and terminals
    from matplotlib import pyplot as plt

    series = report["series"]
    t = [point["t_s"] for point in series]
    fig, (top, bottom) = plt.subplots(2, 1, sharex=True, figsize=(9, 6))
    top.plot(t, [p["calls_per_s"] for p in series], label="calls/s", color="tab:blue")
    top.plot(t, [p["errors"] for p in series], label="errors/s", color="tab:red")
    top.plot(t, [p["late"] for p in series], label="late arrivals/s", color="tab:orange", linestyle="--")
    top.set_ylabel("per second")
    top.legend(loc="upper right")
    top.grid(alpha=0.3)
    bottom.plot(t, [p["p99_ms"] if p["p99_ms"] is not None else float("nan") for p in series], color="tab:purple")
    bottom.set_ylabel("p99 latency (ms)")
    bottom.set_xlabel("seconds into the measured window")
    bottom.grid(alpha=0.3)
    config = report["config"]
    load = f"{config['rate']:g}/s open loop" if config["rate"] is not None else "closed loop"
    fig.suptitle(f"mlgenai load test: {config['scenario']}, {load}, concurrency {config['concurrency']}")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=100)
    plt.close(fig)
