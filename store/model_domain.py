"""Domain objects of logged models (SPEC §6), as ``store/repositories/logged_models.py`` takes
and returns them. Times are epoch milliseconds; ``""`` stands for "none" in optional strings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

PENDING = "PENDING"
READY = "READY"
FAILED = "FAILED"
STATUSES = (PENDING, READY, FAILED)
FINAL_STATUSES = (READY, FAILED)


@dataclass(frozen=True, slots=True)
class ModelMetric:
    """One metric point. ``value`` may be NaN or ±infinity."""

    name: str
    value: float
    step: int
    time_ms: int
    dataset_id: str = ""
    dataset_digest: str = ""
    run_id: str = ""


@dataclass(frozen=True, slots=True)
class NewLoggedModel:
    """What CreateLoggedModel takes (``name`` already chosen: the server picks one when empty)."""

    experiment_id: str
    name: str
    model_type: str = ""
    source_run_id: str = ""
    params: Mapping[str, str] | None = None
    tags: Mapping[str, str] | None = None


@dataclass(frozen=True, slots=True)
class LoggedModel:
    model_id: str
    experiment_id: str
    name: str
    version: int
    model_type: str
    source_run_id: str
    status: str
    status_message: str
    params: Mapping[str, str]
    tags: Mapping[str, str]
    # The latest point per (name, dataset_id, run_id), ordered by those three.
    metrics: tuple[ModelMetric, ...]
    lifecycle_stage: str
    create_time_ms: int
    update_time_ms: int
