"""``python -m bench.compare`` (``make bench-compare``): our server, MLflow 3.18 and Arize
Phoenix, side by side in one run, on the same PostgreSQL, each in its own new database.

One side at a time runs while the others are stopped, so none competes with another for the two
cores. MLflow runs twice, with ``--workers 1`` and ``--workers 2`` (its multi-worker mode waits
about 40 ms per response on a uvicorn TCP_NODELAY problem); each ratio is taken against the
better of the two. Prints the table and writes ``bench/results/compare-<time>.json``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.compare import ours, peers
from bench.compare.common import Workload, parse_result
from bench.databases import ROOT, fresh_database
from bench.procstat import busy_pct
from bench.report import machine_info
from server.childproc import ServerProcess

RESULTS = ROOT / "bench" / "results"


@dataclass(frozen=True)
class Row:
    label: str
    key: str
    unit: str
    higher_is_better: bool = True
    target_mlflow: float | None = None  # ours/MLflow (or MLflow/ours when lower is better) at least
    target_phoenix: float | None = None


ROWS = (
    Row("create experiments (Phoenix: projects)", "experiments_per_s", "/s"),
    Row("trace ingestion, spans stored without loss", "ingest_stored_spans_per_s", "spans/s", True, 300, 100),
    Row("trace ingestion, spans acknowledged", "ingest_acknowledged_spans_per_s", "spans/s"),
    Row("SearchTraces, first page of 100, p50", "search_p50_ms", "ms", False, 5),
    Row("feedback at concurrency 16", "feedback_per_s", "/s", True, 50),
    Row("dataset merge, batches of 100", "merge_records_per_s", "records/s", True, 30),
    Row("dataset read, all records", "read_records_per_s", "records/s"),
)
SIDES = ("ours", "mlflow_w1", "mlflow_w2", "phoenix")


def _driver(peer: peers.Peer, module: str, args: list[str], log: Path) -> dict[str, Any]:
    """``python -m bench.compare.<module>`` in the peer's venv, from the repository root."""
    argv = [str(peer.python), "-m", f"bench.compare.{module}", *args]
    proc = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=False)
    log.write_text(proc.stdout + proc.stderr)
    if proc.returncode != 0:
        raise RuntimeError(f"{module} failed ({proc.returncode}); see {log}:\n{proc.stderr[-2000:]}")
    return parse_result(proc.stdout)


def run_ours(w: Workload, workers: int) -> dict[str, Any]:
    with fresh_database("postgresql") as db, ServerProcess(db.url, workers=workers) as server:
        result = ours.run(server.target, db.url.replace("+psycopg", ""), w)
    return result | {"config": f"mlgenai, {workers} worker process(es), OTLP/gRPC and the generated client"}


def run_mlflow(w: Workload, workers: int, work: Path, burst: bool) -> dict[str, Any]:
    with peers.peer_database(f"mlgenai_cmp_mlflow_w{workers}") as dsn, peers.mlflow_server(dsn, workers, work) as srv:
        base = ["--tracking-uri", srv.tracking_uri, "--dsn", dsn, "--workload", w.to_json()]
        result = _driver(peers.MLFLOW, "drive_mlflow", base, work / f"drive-mlflow-w{workers}.log")
        if burst:
            result |= _driver(peers.MLFLOW, "drive_mlflow", [*base, "--burst"], work / "drive-mlflow-burst.log")
    return result | {
        "config": f"mlflow server --workers {workers}; SDK async export with a queue that holds the whole run"
    }


def run_phoenix(w: Workload, work: Path) -> dict[str, Any]:
    with peers.peer_database("mlgenai_cmp_phoenix") as dsn, peers.phoenix_server(dsn, work) as srv:
        args = ["--base-url", srv.base_url, "--grpc", srv.grpc_target, "--dsn", dsn, "--workload", w.to_json()]
        result = _driver(peers.PHOENIX, "drive_phoenix", args, work / "drive-phoenix.log")
    return result | {"config": "phoenix serve, PostgreSQL; OTLP/gRPC, phoenix.client for the rest"}


def machine_speed() -> dict[str, float]:
    """How fast the machine runs Python just before a side starts, and how busy other programs
    keep it: the seconds of a fixed pure-Python loop (best of 3) and the CPUs' busy percent over
    one second. This machine's speed drifts by ±25% within an hour, and the sides run one after
    another: a ratio between sides measured at different speeds says so here."""
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        sum(i * i for i in range(1_000_000))
        best = min(best, time.perf_counter() - start)
    return {"loop_s": round(best, 4), "busy_pct": round(busy_pct(1.0), 1)}


LOSSLESS_KEY = "ingest_stored_spans_per_s"


def _lost(result: dict[str, Any]) -> int:
    return int(result.get("ingest_spans_sent", 0)) - int(result.get("ingest_spans_stored", 0))


def figure(results: dict[str, dict[str, Any]], side: str, key: str) -> float | None:
    """A side's figure; a rate "without loss" is no figure at all when the side lost spans."""
    result = results.get(side, {})
    if key == LOSSLESS_KEY and _lost(result) > 0:
        return None
    value = result.get(key)
    return None if value is None else float(value)


def _best_mlflow(results: dict[str, dict[str, Any]], row: Row) -> float | None:
    found = (figure(results, s, row.key) for s in ("mlflow_w1", "mlflow_w2"))
    values = [v for v in found if v is not None]
    if not values:
        return None
    return max(values) if row.higher_is_better else min(values)


def _ratio(ours_value: float | None, theirs: float | None, higher_is_better: bool) -> float | None:
    if not ours_value or not theirs:
        return None
    return ours_value / theirs if higher_is_better else theirs / ours_value


def verdicts(results: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for row in ROWS:
        mine = figure(results, "ours", row.key)
        phoenix = figure(results, "phoenix", row.key)
        vs_mlflow = _ratio(mine, _best_mlflow(results, row), row.higher_is_better)
        vs_phoenix = _ratio(mine, phoenix, row.higher_is_better)
        entry: dict[str, Any] = {"figure": row.label, "key": row.key, "vs_mlflow": vs_mlflow, "vs_phoenix": vs_phoenix}
        for name, target, ratio in (
            ("mlflow", row.target_mlflow, vs_mlflow),
            ("phoenix", row.target_phoenix, vs_phoenix),
        ):
            if target is not None and ratio is not None:
                entry[f"target_{name}"] = target
                entry[f"pass_{name}"] = ratio >= target
        out.append(entry)
    return out


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value:.1f}"
    return f"{value:,.0f}" if value >= 100 else f"{value:.1f}"


def _times(ratio: float | None, target: float | None, passed: bool | None) -> str:
    if ratio is None:
        return "-"
    text = f"{ratio:,.1f}×"
    if target is not None:
        text += f" (≥{target:g}× {'PASS' if passed else 'MISS'})"
    return text


def table(results: dict[str, dict[str, Any]]) -> str:
    heads = ("figure", "unit", "ours", "MLflow w1", "MLflow w2", "Phoenix", "ours vs MLflow", "ours vs Phoenix")
    rows = []
    for row, v in zip(ROWS, verdicts(results), strict=True):
        values = [_fmt(figure(results, s, row.key), row.unit) for s in SIDES]
        if row.key == LOSSLESS_KEY:
            values = [f"lost {_lost(results[s]):,}" if s in results and _lost(results[s]) > 0 else v
                      for s, v in zip(SIDES, values, strict=True)]  # fmt: skip
        rows.append(
            [
                row.label,
                row.unit,
                *values,
                _times(v["vs_mlflow"], v.get("target_mlflow"), v.get("pass_mlflow")),
                _times(v["vs_phoenix"], v.get("target_phoenix"), v.get("pass_phoenix")),
            ]
        )
    widths = [max(len(cells[i]) for cells in [list(heads), *rows]) for i in range(len(heads))]
    lines = ["  ".join(h.ljust(widths[i]) if i < 2 else h.rjust(widths[i]) for i, h in enumerate(heads))]
    lines.append("-" * len(lines[0]))
    for cells in rows:
        lines.append("  ".join(c.ljust(widths[i]) if i < 2 else c.rjust(widths[i]) for i, c in enumerate(cells)))
    lines.append("")
    lines.append("Ratios are ours ÷ theirs for rates and theirs ÷ ours for latency, against the better MLflow.")
    speeds = [f"{s} {results[s]['machine']['loop_s']:.3f} s" for s in SIDES if "machine" in results.get(s, {})]
    if speeds:
        lines.append(f"Machine speed before each side (a fixed Python loop; lower is faster): {', '.join(speeds)}.")
    for side in SIDES:
        if side not in results:
            continue
        r = results[side]
        sent, stored = r.get("ingest_spans_sent"), r.get("ingest_spans_stored")
        lines.append(f"{side}: {r.get('config', '')}; ingestion stored {stored:,} of {sent:,} spans")
        if "burst_spans_sent" in r:
            kept = r["burst_spans_stored"] / r["burst_spans_sent"]
            lines.append(
                f"{side}: the default exporter (queue of 1,000) stored {r['burst_spans_stored']:,} of "
                f"{r['burst_spans_sent']:,} spans of a {r['burst_spans_sent'] // 10:,}-trace burst "
                f"({kept:.0%}; {1 - kept:.0%} dropped)"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.compare", description=__doc__.splitlines()[0])
    p.add_argument("--sides", default=",".join(SIDES), help="comma-separated subset of " + ",".join(SIDES))
    p.add_argument("--workers", type=int, default=2, help="our server's worker processes (default 2)")
    p.add_argument("--quick", action="store_true", help="small sizes: a smoke run of every path")
    p.add_argument("--out", type=Path, help="the JSON report (default bench/results/compare-<time>.json)")
    a = p.parse_args(argv)
    sides = [s for s in a.sides.split(",") if s]
    unknown = set(sides) - set(SIDES)
    if unknown:
        p.error(f"unknown sides: {', '.join(sorted(unknown))}")
    w = Workload()
    if a.quick:
        w = Workload(
            experiments=10, ingest_traces=100, search_corpus=100, search_queries=5, feedback=64, records=300, settle_s=5
        )
    # Our rates come from a bigger run (a few seconds at our speed); the search corpus stays the peers' size.
    w_ours = replace(w, ingest_traces=w.ingest_traces * 6, feedback=w.feedback * 5)
    installs = {}
    for peer, wanted in ((peers.MLFLOW, {"mlflow_w1", "mlflow_w2"}), (peers.PHOENIX, {"phoenix"})):
        if wanted & set(sides):
            installs[peer.name] = peers.ensure_installed(peer)
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="mlgenai-compare-") as tmp:
        work = Path(tmp)
        for side in sides:
            print(f"running {side} ...", file=sys.stderr, flush=True)
            speed = machine_speed()
            if side == "ours":
                results[side] = run_ours(w_ours, a.workers)
            elif side.startswith("mlflow_w"):
                results[side] = run_mlflow(w, int(side[-1]), work, burst=side == "mlflow_w1")
            else:
                results[side] = run_phoenix(w, work)
            results[side]["machine"] = speed
    print(table(results))
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    out = a.out or RESULTS / f"compare-{stamp}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    report = {
        "run": stamp,
        "workload": asdict(w),
        "workload_ours": asdict(w_ours),
        "installs": installs,
        "results": results,
        "verdicts": verdicts(results),
        "machine": machine_info(with_postgres=True),
    }
    out.write_text(json.dumps(report, indent=2))
    print(f"\nwrote {out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
