"""The performance targets of issue 2, checked against a run's results.

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
)


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
