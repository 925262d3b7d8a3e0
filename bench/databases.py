"""Fresh databases for a benchmark run, and seeding them.

``fresh_database("sqlite"|"postgresql")`` yields a migrated, empty database URL: a temporary
SQLite file, or a new PostgreSQL database (``mlgenai_bench_<random>``) that is dropped
``WITH (FORCE)`` afterwards. Seeding writes rows with SQLAlchemy Core straight into the tables
(``store.orm``), which is much faster than calling CreateExperiment 10,000 times.
"""

from __future__ import annotations

import os
import secrets
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from store.engine import make_admin_engine, make_engine
from store.migrate import upgrade
from store.orm import ExperimentRow, ExperimentTagRow

ROOT = Path(__file__).resolve().parents[1]
POSTGRES_ADMIN_URL = os.environ.get(
    "MLGENAI_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
SEED_PREFIX = "bench-exp-"
SEED_TEAMS = 100  # tags.team takes 100 values, so `tags.team = 'team-007'` matches 1% of the rows


@dataclass(frozen=True)
class BenchDatabase:
    backend: str
    url: str
    name: str  # the PostgreSQL database name (the SQLite file name otherwise)


def migrate(url: str) -> None:
    """What ``python -m server migrate --database-url URL`` does, without starting a new interpreter."""
    engine = make_engine(url, pool_size=1)
    try:
        upgrade(engine)
    finally:
        engine.dispose()


@contextmanager
def fresh_database(backend: str) -> Iterator[BenchDatabase]:
    if backend == "sqlite":
        with tempfile.TemporaryDirectory(prefix="mlgenai-bench-") as tmp:
            path = Path(tmp) / "bench.db"
            db = BenchDatabase(backend, f"sqlite:///{path}", path.name)
            migrate(db.url)
            yield db
        return
    if backend != "postgresql":
        raise ValueError(f"unknown backend {backend!r}")
    name = f"mlgenai_bench_{secrets.token_hex(4)}"
    with postgres_database(name) as url:
        db = BenchDatabase(backend, url, name)
        migrate(db.url)
        yield db


def create_postgres_database(name: str) -> str:
    """(Re-)create an empty database ``name`` on the local PostgreSQL; its SQLAlchemy URL."""
    admin = make_admin_engine(POSTGRES_ADMIN_URL)
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    finally:
        admin.dispose()
    return sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)


@contextmanager
def postgres_database(name: str) -> Iterator[str]:
    """``create_postgres_database`` for the duration of the block, dropped ``WITH (FORCE)`` after."""
    url = create_postgres_database(name)
    try:
        yield url
    finally:
        admin = make_admin_engine(POSTGRES_ADMIN_URL)
        try:
            with admin.connect() as conn:
                conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            admin.dispose()


def postgres_version() -> str | None:
    try:
        admin = make_admin_engine(POSTGRES_ADMIN_URL)
        with admin.connect() as conn:
            version = conn.exec_driver_sql("SHOW server_version").scalar()
        admin.dispose()
        return str(version)
    except Exception as exc:
        return f"unreachable: {type(exc).__name__}"


def seed_tags(i: int) -> dict[str, str]:
    return {"team": f"team-{i % SEED_TEAMS:03d}", "env": ("prod", "staging", "dev")[i % 3], "owner": f"user-{i % 50}"}


def seed_experiments(url: str, count: int, batch: int = 2000) -> float:
    """Insert ``count`` experiments named ``bench-exp-00000``… with three tags each; returns seconds."""
    started = time.perf_counter()
    exp_table, tag_table = ExperimentRow.__table__, ExperimentTagRow.__table__
    assert isinstance(exp_table, sa.Table) and isinstance(tag_table, sa.Table)
    insert = sa.insert(exp_table).returning(exp_table.c.experiment_id, sort_by_parameter_order=True)
    engine = make_engine(url, pool_size=1)
    now = int(time.time() * 1000) - count
    try:
        for low in range(0, count, batch):
            idx = range(low, min(low + batch, count))
            rows = [
                {
                    "name": f"{SEED_PREFIX}{i:05d}",
                    "artifact_location": None,
                    "lifecycle_stage": "active",
                    "create_time": now + i,
                    "update_time": now + i,
                }
                for i in idx
            ]
            with engine.begin() as conn:
                ids = conn.execute(insert, rows).scalars().all()
                tags = [
                    {"experiment_id": exp_id, "key": k, "value": v}
                    for i, exp_id in zip(idx, ids, strict=True)
                    for k, v in seed_tags(i).items()
                ]
                conn.execute(sa.insert(tag_table), tags)
        if engine.dialect.name == "postgresql":
            # What autovacuum would do within a minute of these inserts. SQLite is left as the
            # server leaves it (no ANALYZE), so its plans are the ones users get.
            with engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE")
    finally:
        engine.dispose()
    return time.perf_counter() - started
