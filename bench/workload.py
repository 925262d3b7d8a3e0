"""What a workload is: an operation, a concurrency, a server, and what to check around it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.loadgen import Operation

Record = dict[str, Any]


@dataclass(frozen=True)
class Workload:
    name: str  # what --only and the targets use, e.g. "get_c16"
    rpc: str  # what the table shows, e.g. "GetExperiment"
    note: str
    op: Operation
    concurrency: int
    channels: int = 1
    target: str = "server"  # "server", "workers2" or "echo"
    needs_seed: bool = False  # the seeded experiments (SearchExperiments)
    min_duration_s: float = 0.0  # for slow operations: enough calls even with --quick
    group: str = ""  # what `--only <group>` selects it by; default: the name's first word
    sweep: tuple[int, ...] = ()  # concurrencies to try (instead of `concurrency`): the fastest is reported
    calls: int = 0  # a fixed amount of work (LoadSpec.calls) instead of a measured window
    per_call: int = 0  # items (spans, assessments) per call: the record gets items_per_s
    item: str = ""  # what those items are, e.g. "spans"
    prepare: str = ""  # the trace fixture it needs (bench.trace_prep.prepare): ingest, search, get10k, assess
    probe: Callable[[str], Record] | None = None  # called once with the server's address before measuring
    stored_in: str = ""  # experiment whose stored spans must equal acknowledged calls × per_call

    @property
    def group_name(self) -> str:
        return self.group or self.name.split("_")[0]
