"""Alembic environment: runs against the engine ``store.migrate`` passes in."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Engine

from store.orm import Base

config = context.config
engine: Engine = config.attributes["engine"]


def run() -> None:
    with engine.connect() as conn:
        context.configure(
            connection=conn,
            target_metadata=Base.metadata,
            render_as_batch=True,  # SQLite cannot ALTER most things; batch mode rebuilds tables
            compare_type=True,
            compare_server_default=True,
        )
        with context.begin_transaction():
            context.run_migrations()
        conn.commit()


if context.is_offline_mode():
    raise SystemExit("offline (SQL script) migrations are not supported; run against a database")
run()
