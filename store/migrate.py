"""Schema migrations with Alembic, driven from code (no alembic.ini).

``upgrade(engine)`` brings a database to the newest revision; ``schema_status(engine)`` tells
whether it is there. The server migrates the embedded SQLite default by itself on start and
refuses to start on a PostgreSQL database that is behind, naming the command that fixes it.

For developers: ``python -m store.migrate revision -m "what changed"`` autogenerates a new
revision against the database in ``MLGENAI_DATABASE_URL`` (generate against PostgreSQL, the
production dialect, and review it; revisions never import ``store.orm``).
"""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Engine

from store.engine import make_engine

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def alembic_config(engine: Engine | None = None) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    cfg.set_main_option("file_template", "%%(year)d_%%(month).2d_%%(day).2d_%%(rev)s_%%(slug)s")
    if engine is not None:
        cfg.attributes["engine"] = engine
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    assert head is not None, "no migrations"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@dataclass(frozen=True)
class SchemaStatus:
    current: str | None
    head: str

    @property
    def up_to_date(self) -> bool:
        return self.current == self.head


def schema_status(engine: Engine) -> SchemaStatus:
    return SchemaStatus(current_revision(engine), head_revision())


def upgrade(engine: Engine, revision: str = "head") -> None:
    command.upgrade(alembic_config(engine), revision)


def downgrade(engine: Engine, revision: str) -> None:
    command.downgrade(alembic_config(engine), revision)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m store.migrate")
    sub = parser.add_subparsers(dest="cmd", required=True)
    rev = sub.add_parser("revision", help="autogenerate a revision from the models")
    rev.add_argument("-m", "--message", required=True)
    sub.add_parser("upgrade", help="upgrade to head")
    args = parser.parse_args(argv)
    url = os.environ.get("MLGENAI_DATABASE_URL", "sqlite:///mlgenai.db")
    engine = make_engine(url)
    if args.cmd == "upgrade":
        upgrade(engine)
    else:
        command.revision(alembic_config(engine), message=args.message, autogenerate=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
