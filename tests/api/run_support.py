"""Shared by the evaluation run tests: tables, stored-state reads, models and datasets to pin."""

from __future__ import annotations

import datetime as dt
import secrets
import time
from typing import Any

import sqlalchemy as sa

from mlgenai.client import Client
from store.uow import Database

RUN_TABLES = ("runs", "run_params", "run_tags", "run_metrics", "run_latest_metrics", "trace_run_links")
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MISSING_RUN = "0" * 32


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def ms(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def at(ms_value: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=ms_value)


def stored_run(db: Database, run_id: str) -> Any:
    with db.engine.connect() as conn:
        return conn.execute(sa.text("SELECT * FROM runs WHERE run_id = :id"), {"id": run_id}).one()


def stored_map(db: Database, table: str, run_id: str) -> dict[str, str]:
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT key, value FROM {table} WHERE run_id = :id"), {"id": run_id}).all()
    return {r.key: r.value for r in rows}


def history(db: Database, run_id: str) -> list[tuple[str, float | None, int, int]]:
    with db.engine.connect() as conn:
        rows = conn.execute(
            sa.text("SELECT name, value, step, time FROM run_metrics WHERE run_id = :id ORDER BY metric_id"),
            {"id": run_id},
        ).all()
    return [tuple(r) for r in rows]  # type: ignore[misc]


def links(db: Database, run_id: str | None = None) -> dict[tuple[str, str], str | None]:
    sql = "SELECT run_id, trace_id, dataset_record_id FROM trace_run_links"
    with db.engine.connect() as conn:
        rows = conn.execute(sa.text(sql + (" WHERE run_id = :id" if run_id else "")), {"id": run_id}).all()
    return {(r.run_id, r.trace_id): r.dataset_record_id for r in rows}


def logged_model(db: Database, experiment_id: str, name: str = "agent") -> str:
    """A logged model row, written straight into its table (its service is built elsewhere)."""
    model_id = "m-" + secrets.token_hex(16)
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO logged_models (model_id, experiment_id, name, version, status, lifecycle_stage,"
                " create_time, update_time) VALUES (:m, :e, :n, 1, 'READY', 'active', 0, 0)"
            ),
            {"m": model_id, "e": int(experiment_id), "n": name},
        )
    return model_id


def dataset_with_versions(client: Client, experiment_id: str, versions: int = 3) -> tuple[str, list[str]]:
    """A dataset with ``versions`` merges; returns its id and the digest of versions 0..n."""
    ds = client.create_dataset("golden", experiment_ids=[experiment_id])
    digests = [ds["digest"]]
    for i in range(versions):
        result = client.merge_records(ds["dataset_id"], [{"inputs": {"q": f"question {i}"}}])
        assert result["version"] == i + 1
        digests.append(result["digest"])
    return ds["dataset_id"], digests
