"""CPU time and memory of processes, read from ``/proc`` (Linux).

``Sampler.snapshot()`` sums user+system CPU of a few process groups at one instant: the server
(its process and every descendant, so ``--workers N`` counts all workers), the load generator's
processes, PostgreSQL's processes (when they are visible), and the whole machine (``/proc/stat``).
Two snapshots around the measured window give CPU per call.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

PROC = Path("/proc")
CLK_TCK = os.sysconf("SC_CLK_TCK")
NS_PER_TICK = 1_000_000_000 // CLK_TCK


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/<pid>/stat after the command name (field 3, ``state``, is index 0)."""
    try:
        text = (PROC / str(pid) / "stat").read_text()
    except OSError:
        return None
    return text[text.rfind(")") + 2 :].split()


def cpu_ns(pid: int) -> int:
    """utime+stime of one process (its threads included), in ns; 0 if it is gone."""
    fields = _stat_fields(pid)
    if fields is None:
        return 0
    return (int(fields[11]) + int(fields[12])) * NS_PER_TICK


def _parents() -> dict[int, int]:
    out: dict[int, int] = {}
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            fields = _stat_fields(int(entry.name))
            if fields is not None:
                out[int(entry.name)] = int(fields[1])
    return out


def process_tree(pid: int) -> list[int]:
    """``pid`` and all its living descendants."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    tree, todo = [], [pid]
    while todo:
        current = todo.pop()
        tree.append(current)
        todo.extend(children.get(current, ()))
    return tree


def pids_matching(comm: str, cmdline_part: str = "") -> list[int]:
    """Processes named ``comm`` whose command line contains ``cmdline_part``.

    PostgreSQL backends show their database in their title, so ``("postgres", " mydb ")`` finds
    the backends serving ``mydb`` and not those of other databases on the same cluster.
    """
    out = []
    for entry in PROC.iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != comm:
                    continue
                if cmdline_part in (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace"):
                    out.append(int(entry.name))
            except OSError:
                continue
    return out


def _status_kb(pid: int, key: str) -> int:
    try:
        for line in (PROC / str(pid) / "status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def rss_kb(pids: Iterable[int]) -> int:
    """Sum of the current resident set sizes (VmRSS) of ``pids``, in KiB."""
    return sum(_status_kb(pid, "VmRSS") for pid in pids)


def peak_rss_mb(pids: Iterable[int]) -> float:
    """Sum of the peak resident set sizes (VmHWM) of ``pids``, in MiB."""
    return sum(_status_kb(pid, "VmHWM") for pid in pids) / 1024


def machine_ticks() -> tuple[int, int, int]:
    """(busy, total, steal) jiffies of all CPUs since boot.

    Busy excludes idle, iowait and steal (time the hypervisor gave our virtual CPUs to others).
    """
    values = [int(v) for v in (PROC / "stat").read_text().splitlines()[0].split()[1:]] + [0] * 8
    idle, steal = values[3] + values[4], values[7]
    total = sum(values[:8])  # guest time is already counted in user
    return total - idle - steal, total, steal


@dataclass(frozen=True)
class Snapshot:
    t_ns: int
    server_ns: int
    generator_ns: int
    database_ns: int
    machine_busy: int
    machine_total: int
    machine_steal: int


@dataclass(frozen=True)
class Usage:
    """CPU used between two snapshots."""

    wall_s: float
    server_s: float
    generator_s: float
    database_s: float
    machine_busy_pct: float  # of all CPUs
    machine_busy_s: float
    steal_pct: float  # of all CPUs: high values mean a noisy host

    @property
    def other_s(self) -> float:
        """CPU used by everything else on the machine (other programs, the kernel's own work)."""
        return max(self.machine_busy_s - self.server_s - self.generator_s - self.database_s, 0.0)

    @staticmethod
    def between(a: Snapshot, b: Snapshot) -> Usage:
        total = max(b.machine_total - a.machine_total, 1)
        return Usage(
            wall_s=(b.t_ns - a.t_ns) / 1e9,
            server_s=max(b.server_ns - a.server_ns, 0) / 1e9,
            generator_s=max(b.generator_ns - a.generator_ns, 0) / 1e9,
            database_s=max(b.database_ns - a.database_ns, 0) / 1e9,
            machine_busy_pct=100.0 * (b.machine_busy - a.machine_busy) / total,
            machine_busy_s=(b.machine_busy - a.machine_busy) * NS_PER_TICK / 1e9,
            steal_pct=100.0 * (b.machine_steal - a.machine_steal) / total,
        )


@dataclass
class Sampler:
    """Samples the server's process tree, the generator processes and PostgreSQL."""

    server_pid: int | None
    generator_pids: Sequence[int] = ()
    database_comm: str | None = None  # e.g. "postgres"
    database_match: str = ""  # e.g. " mlgenai_bench_x " (a database name, spaces around)
    _tree: list[int] = field(default_factory=list)

    def server_tree(self) -> list[int]:
        return process_tree(self.server_pid) if self.server_pid is not None else []

    def snapshot(self) -> Snapshot:
        self._tree = self.server_tree()
        busy, total, steal = machine_ticks()
        return Snapshot(
            t_ns=time.perf_counter_ns(),
            server_ns=sum(cpu_ns(p) for p in self._tree),
            generator_ns=sum(cpu_ns(p) for p in self.generator_pids),
            database_ns=sum(cpu_ns(p) for p in self.database_pids()),
            machine_busy=busy,
            machine_total=total,
            machine_steal=steal,
        )

    def database_pids(self) -> list[int]:
        return pids_matching(self.database_comm, self.database_match) if self.database_comm else []

    def server_peak_rss_mb(self) -> float:
        return peak_rss_mb(self.server_tree())


def busy_pct(seconds: float) -> float:
    """How busy all CPUs are over the next ``seconds`` (percent of the machine)."""
    b0, t0, _ = machine_ticks()
    time.sleep(seconds)
    b1, t1, _ = machine_ticks()
    return 100.0 * (b1 - b0) / max(t1 - t0, 1)


def wait_until_quiet(max_wait_s: float, threshold_pct: float = 15.0, probe_s: float = 0.5) -> tuple[float, float]:
    """Wait (up to ``max_wait_s``) until other programs leave the CPUs alone.

    Returns (seconds waited, busy percent of the last probe). Measurements taken while other
    work runs on the same cores are not comparable with anything, so the runner waits here
    before each workload; the record keeps both numbers either way.
    """
    started = time.monotonic()
    busy = busy_pct(probe_s)
    while busy > threshold_pct and time.monotonic() - started < max_wait_s:
        busy = busy_pct(probe_s)
    return round(time.monotonic() - started, 1), round(busy, 1)
