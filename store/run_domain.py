"""Domain objects of evaluation runs (SPEC §7): frozen dataclasses, times in epoch milliseconds."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

RUNNING = "RUNNING"
FINISHED = "FINISHED"
FAILED = "FAILED"
KILLED = "KILLED"
RUN_STATUSES = (RUNNING, FINISHED, FAILED, KILLED)
TERMINAL = frozenset({FINISHED, FAILED, KILLED})


@dataclass(frozen=True, slots=True)
class RunMetric:
    """One metric point. ``value`` may be NaN or ±infinity."""

    name: str
    value: float
    step: int
    time_ms: int


@dataclass(frozen=True, slots=True)
class RunDataset:
    dataset_id: str
    version: int
    digest: str


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    experiment_id: str
    name: str
    status: str
    start_time_ms: int
    end_time_ms: int | None
    params: Mapping[str, str]
    metrics: tuple[RunMetric, ...]  # the latest point of each metric, by name
    tags: Mapping[str, str]
    dataset: RunDataset | None
    model_id: str | None
    lifecycle_stage: str
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class NewRun:
    """What CreateRun asks for. ``dataset_version`` 0 pins the dataset's current version."""

    experiment_id: str
    name: str
    dataset_id: str | None = None
    dataset_version: int = 0
    model_id: str | None = None
    params: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class RunChanges:
    """The fields UpdateRun sets (None: unchanged)."""

    name: str | None = None
    status: str | None = None
    end_time_ms: int | None = None
