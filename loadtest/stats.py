"""What a load test measured: per gRPC method, per second of the window, and live for the progress line.

Every call is recorded once, when it ends, with its start time. The figures of the report
count the calls that *started* inside the measured window (after ``--warmup``), so a call
that was slow because of load it met in second 12 shows up in second 12 even when it ends in
second 14. Latency percentiles are over successful calls only (a failed call's latency says
little about the server's speed); failures are counted by status code name per method and are
never hidden. The live figures (progress line) are by *end* time, since the line for second 12
cannot wait for calls still running.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

Figures = dict[str, Any]
PERCENTILES = (("p50", 0.50), ("p95", 0.95), ("p99", 0.99), ("max", 1.0))


def percentile(sorted_values: list[float], q: float) -> float | None:
    """Nearest-rank percentile of ascending values (None when there are none)."""
    if not sorted_values:
        return None
    rank = max(math.ceil(q * len(sorted_values)) - 1, 0)
    return sorted_values[rank]


def _round(value: float | None, digits: int = 3) -> float | None:
    return None if value is None else round(value, digits)


@dataclass
class Bucket:
    """Calls (by outcome) and late arrivals of one method or one second."""

    latencies_ms: list[float] = field(default_factory=list)
    errors: Counter[str] = field(default_factory=Counter)
    late: int = 0

    @property
    def calls(self) -> int:
        return len(self.latencies_ms) + sum(self.errors.values())

    def latency_figures(self) -> Figures:
        ordered = sorted(self.latencies_ms)
        return {f"{name}_ms": _round(percentile(ordered, q)) for name, q in PERCENTILES}


def merged(buckets: Iterable[Bucket]) -> Bucket:
    """One bucket holding the calls of ``buckets`` (late arrivals are not carried over)."""
    out = Bucket()
    for bucket in buckets:
        out.latencies_ms += bucket.latencies_ms
        out.errors.update(bucket.errors)
    return out


class Recorder:
    """Collects call outcomes; ``expected`` are status codes the scenario treats as normal."""

    def __init__(self, started: float, warmup_s: float, duration_s: float, expected: frozenset[str]) -> None:
        self.window_start = started + warmup_s
        self.window_end = self.window_start + duration_s
        self.duration_s = duration_s
        self.expected = expected
        self.methods: dict[str, Bucket] = {}
        self.seconds = [Bucket() for _ in range(max(1, math.ceil(duration_s)))]
        self.arrivals = 0
        self.late = 0
        self.max_lag_ms = 0.0
        self.live = Bucket()  # since the last progress tick, by end time

    def in_window(self, t: float) -> bool:
        return self.window_start <= t < self.window_end

    def _second(self, t: float) -> Bucket:
        return self.seconds[min(int(t - self.window_start), len(self.seconds) - 1)]

    def record(self, method: str, start: float, end: float, code: str = "") -> None:
        """One finished call; ``code`` is the status code name (or exception type) of a failure."""
        latency_ms = (end - start) * 1e3
        self._add(self.live, latency_ms, code)
        if self.in_window(start):
            self._add(self.methods.setdefault(method, Bucket()), latency_ms, code)
            self._add(self._second(start), latency_ms, code)

    @staticmethod
    def _add(bucket: Bucket, latency_ms: float, code: str) -> None:
        if code:
            bucket.errors[code] += 1
        else:
            bucket.latencies_ms.append(latency_ms)

    def arrival(self, at: float, late: bool, lag_s: float = 0.0) -> None:
        """An open-loop arrival at its scheduled time ``at``; ``late``: no free slot, not sent."""
        if not self.in_window(at):
            return
        self.arrivals += 1
        self.max_lag_ms = max(self.max_lag_ms, lag_s * 1e3)
        if late:
            self.late += 1
            self._second(at).late += 1

    def take_live(self) -> Bucket:
        """The calls that ended since the last call of this (for the progress line)."""
        live, self.live = self.live, Bucket()
        return live

    def unexpected_errors(self) -> Counter[str]:
        out: Counter[str] = Counter()
        for bucket in self.methods.values():
            out.update({code: n for code, n in bucket.errors.items() if code not in self.expected})
        return out

    def method_figures(self) -> dict[str, Figures]:
        """Per method: calls, ok, errors by code, latency percentiles, calls/s — sorted by name."""
        out: dict[str, Figures] = {}
        for name in sorted(self.methods):
            bucket = self.methods[name]
            out[name] = {
                "calls": bucket.calls,
                "ok": len(bucket.latencies_ms),
                "errors": dict(sorted(bucket.errors.items())),
                **bucket.latency_figures(),
                "calls_per_s": round(bucket.calls / self.duration_s, 2),
            }
        return out

    def series(self) -> list[Figures]:
        """One entry per second of the window (the last may be shorter): throughput, errors, p99."""
        out = []
        for i, bucket in enumerate(self.seconds):
            width = min(1.0, self.duration_s - i) or 1.0
            out.append(
                {
                    "t_s": i,
                    "calls": bucket.calls,
                    "errors": sum(bucket.errors.values()),
                    "late": bucket.late,
                    "calls_per_s": round(bucket.calls / width, 2),
                    "p99_ms": _round(percentile(sorted(bucket.latencies_ms), 0.99)),
                }
            )
        return out

    def span_figures(self, start_s: int, end_s: int) -> Figures:
        """Calls, errors and latency percentiles of the calls that started in seconds
        [``start_s``, ``end_s``) of the window (a soak compares its first and last minute)."""
        span = merged(self.seconds[max(start_s, 0) : end_s])
        return {
            "start_s": start_s,
            "end_s": end_s,
            "calls": span.calls,
            "ok": len(span.latencies_ms),
            "errors": dict(sorted(span.errors.items())),
            **span.latency_figures(),
        }

    def totals(self) -> Figures:
        everything = merged(self.methods.values())
        return {
            "calls": everything.calls,
            "ok": len(everything.latencies_ms),
            "errors": dict(sorted(everything.errors.items())),
            "unexpected_errors": sum(self.unexpected_errors().values()),
            **everything.latency_figures(),
            "calls_per_s": round(everything.calls / self.duration_s, 2),
            "arrivals": self.arrivals,
            "late": self.late,
            "max_schedule_lag_ms": round(self.max_lag_ms, 3),
        }
