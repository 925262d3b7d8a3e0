"""The performance targets of issues 2, 3, 4 and 5, checked against a run's results.

They are stated for one server process on PostgreSQL; the same checks are printed for SQLite
for information. A target whose workload had errors is a MISS whatever its numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

Record = dict[str, Any]
TARGET_BACKEND = "postgresql"


@dataclass(frozen=True)
class Target:
    key: str
    text: str
    workloads: tuple[str, ...]  # results it reads (their errors fail it)
    value: Callable[[dict[str, Record]], float | None]
    limit: float
    at_least: bool  # True: value >= limit passes; False: value <= limit passes
    unit: str


def _get(rs: dict[str, Record], name: str, key: str) -> float | None:
    value = rs.get(name, {}).get(key)
    return float(value) if value is not None else None


def _reads(name: str, key: str) -> Callable[[dict[str, Record]], float | None]:
    return lambda rs: _get(rs, name, key)


def _ratio(rs: dict[str, Record], num: str, den: str) -> float | None:
    a, b = _get(rs, num, "calls_per_s"), _get(rs, den, "calls_per_s")
    return a / b if a is not None and b else None


TARGETS = (
    Target(
        "create_p50_c1",
        "CreateExperiment p50 ≤ 3 ms at concurrency 1 (with request_id)",
        ("create_c1",),
        lambda rs: _get(rs, "create_c1", "p50_ms"),
        3.0,
        False,
        "ms",
    ),
    Target(
        "create_rate_c16",
        "CreateExperiment ≥ 1,500/s at concurrency 16 (with request_id)",
        ("create_c16",),
        lambda rs: _get(rs, "create_c16", "calls_per_s"),
        1500.0,
        True,
        "/s",
    ),
    Target(
        "get_vs_echo_c16",
        "GetExperiment ≥ 50% of the bare echo server's throughput at concurrency 16",
        ("get_c16", "echo_c16"),
        lambda rs: _ratio(rs, "get_c16", "echo_c16"),
        0.5,
        True,
        "×echo",
    ),
    Target(
        "search_p50",
        "SearchExperiments p50 ≤ 5 ms over 10,000 experiments (tag filter, 1%)",
        ("search_tag",),
        lambda rs: _get(rs, "search_tag", "p50_ms"),
        5.0,
        False,
        "ms",
    ),
    Target(
        "workers2_speedup",
        "--workers 2 ≥ 1.6× one worker on GetExperiment (concurrency 64)",
        ("get_workers2_c64", "get_workers1_c64"),
        lambda rs: _ratio(rs, "get_workers2_c64", "get_workers1_c64"),
        1.6,
        True,
        "×",
    ),
    # -- issue 3: traces, OTLP, assessments ------------------------------------------------------
    Target(
        "logspans_rate",
        "LogSpans ≥ 20,000 spans/s (100 traces × 10 spans per call, best of concurrency 1/2/4)",
        ("logspans",),
        _reads("logspans", "items_per_s"),
        20_000.0,
        True,
        "spans/s",
    ),
    Target(
        "otlp_rate",
        "OTLP Export ≥ 15,000 spans/s (same spans, best of concurrency 1/2/4)",
        ("otlp",),
        _reads("otlp", "items_per_s"),
        15_000.0,
        True,
        "spans/s",
    ),
    *(
        Target(
            f"{name}_p50",
            f"SearchTraces p50 ≤ 10 ms over 100,000 traces ({text}, first page of 100)",
            (name,),
            _reads(name, "p50_ms"),
            10.0,
            False,
            "ms",
        )
        for name, text in (
            ("search_traces_tag_status", "tag + status"),
            ("search_traces_feedback", "feedback > 0.5"),
        )
    ),
    Target(
        "get_trace_10k_p50",
        "GetTrace of a trace of 10,000 spans p50 ≤ 300 ms",
        ("get_trace_10k",),
        _reads("get_trace_10k", "p50_ms"),
        300.0,
        False,
        "ms",
    ),
    *(
        Target(
            f"{name}_rate",
            f"CreateAssessment ≥ 1,500/s at concurrency 16 ({what})",
            (name,),
            _reads(name, "calls_per_s"),
            1500.0,
            True,
            "/s",
        )
        for name, what in (
            ("create_assessment_c16", "with request_id"),
            ("create_assessment_norid_c16", "no request_id"),
        )
    ),
    Target(
        "batch_assessments_rate",
        "BatchCreateAssessments ≥ 20,000 assessments/s (1,000 per call)",
        ("batch_assessments",),
        _reads("batch_assessments", "items_per_s"),
        20_000.0,
        True,
        "/s",
    ),
    # -- issue 4: evaluation datasets (bench.dataset_ops) ---------------------------------------
    *(
        Target(
            f"{name}_rate", f"{text} ≥ {limit:,.0f} records/s", (name,), _reads(name, "items_per_s"), limit, True, "/s"
        )
        for name, text, limit in (
            ("dataset_merge_new", "MergeRecords of 100,000 new records in batches of 1,000", 20_000.0),
            ("dataset_merge_changed", "Re-merge of the same 100,000 with changed expectations", 15_000.0),
            ("dataset_merge_unchanged", "Re-merge of the same 100,000 unchanged", 25_000.0),
            ("dataset_list_current", "ListRecords of all 100,000 current records", 50_000.0),
            ("dataset_list_version", "ListRecords of all 100,000 at an old version", 30_000.0),
        )
    ),
    Target(
        "dataset_upkeep_overhead",
        "Schema/profile upkeep adds ≤ 15% to the merge time of 100,000 new records",
        ("dataset_merge_new", "dataset_merge_new_nostats"),
        lambda rs: _overhead(rs, "dataset_merge_new", "dataset_merge_new_nostats"),
        0.15,
        False,
        "×",
    ),
    # -- issue 5: run results, comparison, trace metrics (bench.analytics_suite) -----------------
    *(
        Target(f"{name}_{key[:3]}", text, (name,), _reads(name, f"{key}_ms"), limit, False, "ms")
        for name, key, text, limit in (
            ("run_results", "p50", "GetRunResults over 10,000 traces × 3 feedback names p50 ≤ 50 ms", 50.0),
            ("compare_runs", "p50", "CompareRuns of two such runs p50 ≤ 150 ms (summary)", 150.0),
            (
                "trace_metrics_p95",
                "p99",
                "QueryTraceMetrics of p95 latency per model per day over 100,000 traces: call p99 ≤ 200 ms",
                200.0,
            ),
        )
    ),
    # -- issue 6: labeling round trips (bench.labeling_suite) ------------------------------------
    Target(
        "label_rate_c16",
        "ClaimNextItem + SubmitLabels at 16 raters ≥ 500 labels/s",
        ("label_c16",),
        _reads("label_c16", "items_per_s"),
        500.0,
        True,
        "/s",
    ),
    Target(
        "label_p99_c16",
        "ClaimNextItem + SubmitLabels at 16 raters: round trip p99 ≤ 50 ms",
        ("label_c16",),
        _reads("label_c16", "p99_ms"),
        50.0,
        False,
        "ms",
    ),
)


def _overhead(rs: dict[str, Record], slower: str, baseline: str) -> float | None:
    """How much longer ``slower`` took than ``baseline`` for the same work (0.1 = 10% longer)."""
    ratio = _ratio(rs, baseline, slower)
    return ratio - 1 if ratio is not None else None


RATIOS = (
    *((f"GetExperiment / echo, concurrency {c}", f"get_c{c}", f"echo_c{c}") for c in (1, 16, 64)),
    ("GetExperiment --workers 2 / --workers 1, concurrency 64", "get_workers2_c64", "get_workers1_c64"),
)


def _by_backend(results: Sequence[Record]) -> dict[str, dict[str, Record]]:
    out: dict[str, dict[str, Record]] = {}
    for r in results:
        out.setdefault(r["backend"], {})[r["workload"]] = r
    return out


def ratios(results: Sequence[Record]) -> list[Record]:
    """Throughput ratios measured in the same backend pass (GetExperiment vs the echo ceiling)."""
    out = []
    for backend, rs in _by_backend(results).items():
        for text, num, den in RATIOS:
            value = _ratio(rs, num, den)
            if value is not None:
                out.append({"backend": backend, "ratio": text, "numerator": num, "denominator": den, "value": value})
    return out


def evaluate(results: Sequence[Record]) -> list[Record]:
    """One verdict per target and backend that ran its workloads."""
    out = []
    for backend, rs in _by_backend(results).items():
        for t in TARGETS:
            value = t.value(rs)
            if value is None:
                continue
            errors = sum(sum(rs[w]["errors"].values()) for w in t.workloads if w in rs)
            ok = value >= t.limit if t.at_least else value <= t.limit
            out.append(
                {
                    "target": t.key,
                    "text": t.text,
                    "backend": backend,
                    "binding": backend == TARGET_BACKEND,
                    "value": value,
                    "limit": t.limit,
                    "unit": t.unit,
                    "errors": errors,
                    "verdict": "PASS" if ok and not errors else "MISS",
                }
            )
    return out
