"""Alembic migrations on both databases: the schema they build is exactly the models'."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from server.app import StartupError, open_database
from server.settings import Settings
from store import migrate
from store.engine import make_engine
from store.orm import Base


def _diff(engine: sa.Engine) -> list[object]:
    with engine.connect() as conn:
        ctx = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
        return list(compare_metadata(ctx, Base.metadata))


def test_upgrade_head_matches_the_models_exactly(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    assert _diff(engine) == []
    assert migrate.schema_status(engine).up_to_date
    engine.dispose()


def test_downgrade_to_base_and_upgrade_again(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    migrate.downgrade(engine, "base")
    tables = set(sa.inspect(engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(engine)
    assert _diff(engine) == []
    engine.dispose()


_LZ4 = sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")
_COMPRESSION = sa.text(
    "SELECT c.relname || '.' || a.attname, a.attcompression"
    " FROM pg_attribute a JOIN pg_class c ON c.oid = a.attrelid WHERE (c.relname, a.attname) IN"
    " (('spans', 'payload'), ('spans', 'proto'), ('evaluation_dataset_fields', 'stats'))"
)


@pytest.mark.postgresql_only
def test_large_values_are_compressed_with_lz4_and_back_to_the_default_on_downgrade(empty_db_url: str) -> None:
    """The spans' payload and proto and the dataset field profiles, rewritten on every write,
    use lz4 where the server is built with it (as this machine's is); a downgrade past the
    revisions restores the default."""
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        lz4 = "l" if conn.execute(_LZ4).scalar() else ""
        assert dict(conn.execute(_COMPRESSION).all()) == {
            "spans.payload": lz4, "spans.proto": lz4, "evaluation_dataset_fields.stats": lz4,
        }  # fmt: skip
    migrate.downgrade(engine, "b7e2c4a19f03")
    with engine.connect() as conn:
        assert dict(conn.execute(_COMPRESSION).all())["evaluation_dataset_fields.stats"] == ""
    engine.dispose()


def test_initial_revision_creates_the_default_experiment(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    with engine.connect() as conn:
        rows = conn.execute(sa.text("SELECT experiment_id, name, lifecycle_stage FROM experiments")).all()
    assert [tuple(r) for r in rows] == [(0, "Default", "active")]
    engine.dispose()


def test_first_experiment_created_after_default_gets_id_1(empty_db_url: str) -> None:
    engine = make_engine(empty_db_url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        new_id = conn.execute(
            sa.text(
                "INSERT INTO experiments (name, lifecycle_stage, create_time, update_time) "
                "VALUES ('x', 'active', 1, 1) RETURNING experiment_id"
            )
        ).scalar_one()
    assert new_id == 1
    engine.dispose()


@pytest.mark.parametrize("stale", ["empty", "old revision"])
def test_postgresql_refuses_to_start_on_an_old_schema(backend: str, empty_db_url: str, stale: str) -> None:
    if backend != "postgresql":
        # SQLite is the embedded default: it migrates itself (next test).
        settings = Settings(database_url=empty_db_url)
        db = open_database(settings)
        assert migrate.schema_status(db.engine).up_to_date
        db.dispose()
        return
    if stale == "old revision":
        engine = make_engine(empty_db_url)
        migrate.upgrade(engine)
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE alembic_version SET version_num = '000000000000'"))
        engine.dispose()
    with pytest.raises(StartupError) as info:
        open_database(Settings(database_url=empty_db_url))
    assert "python -m server migrate" in str(info.value)
    assert migrate.head_revision() in str(info.value)


def test_sqlite_default_migrates_itself_on_start(tmp_path: object) -> None:
    url = f"sqlite:///{tmp_path}/fresh.db"
    db = open_database(Settings(database_url=url))
    try:
        assert migrate.schema_status(db.engine).up_to_date
        assert _diff(db.engine) == []
    finally:
        db.dispose()
