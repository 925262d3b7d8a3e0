"""Shared by the LoggedModelService tests: the tables a model writes, runs stored directly (the
run service is not these tests' subject), and a "nothing was stored" check."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from store.orm.base import table
from store.orm.runs import RunRow
from store.uow import Database
from tests.helpers import snapshot

MODEL_TABLES = (
    "logged_models",
    "logged_model_names",
    "logged_model_params",
    "logged_model_tags",
    "logged_model_metrics",
    "logged_model_latest_metrics",
    "request_ids",
)
T0_MS = 1_750_000_000_000


@contextmanager
def nothing_stored(db: Database) -> Iterator[None]:
    """Assert that the block leaves every logged model table as it found it."""
    before = snapshot(db, *MODEL_TABLES)
    yield
    assert snapshot(db, *MODEL_TABLES) == before, "a rejected call changed the database"


def add_run(db: Database, experiment_id: str, run_id: str | None = None) -> str:
    """Store an evaluation run row directly and return its id (32 lowercase hex)."""
    run_id = run_id or secrets.token_hex(16)
    with db.engine.begin() as conn:
        conn.execute(
            sa.insert(table(RunRow)).values(
                run_id=run_id, experiment_id=int(experiment_id), name="run", status="RUNNING", start_time=T0_MS,
                lifecycle_stage="active", deleted_with_experiment=False, create_time=T0_MS, update_time=T0_MS,
            )
        )  # fmt: skip
    return run_id


def versions(models: list[dict[str, object]]) -> list[object]:
    return sorted(m["version"] for m in models)  # type: ignore[type-var]
