"""One suite, two databases.

``--db sqlite|postgresql|all`` picks the backends; the default is ``all`` when PostgreSQL is
reachable at ``MLGENAI_TEST_DATABASE_URL`` (default: the local server, trust auth) and
``sqlite`` otherwise. With ``CI=true`` PostgreSQL is mandatory: unreachable fails the run.

Every test that uses the ``backend`` fixture (directly or through ``database``, ``server``,
``client``) runs once per selected backend, on a fresh database copied from a migrated
template (PostgreSQL: ``CREATE DATABASE … TEMPLATE``; SQLite: a file copy).
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from mlgenai.client import Client, connect
from server.app import RunningServer, build_server
from server.settings import Settings
from store import migrate
from store.engine import make_admin_engine, make_engine
from store.uow import Database

PG_DEFAULT = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
RUN_ID = uuid.uuid4().hex[:8]


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--db", choices=("sqlite", "postgresql", "all"), default=None, help="database backends")


def pg_server_url() -> str:
    return os.environ.get("MLGENAI_TEST_DATABASE_URL", PG_DEFAULT)


def _pg_reachable() -> str | None:
    try:
        engine = make_admin_engine(pg_server_url())
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("--db")
    ci = os.environ.get("CI", "").lower() == "true"
    problem = _pg_reachable() if chosen in (None, "postgresql", "all") else None
    if chosen is None:
        chosen = "all" if problem is None or ci else "sqlite"
    if chosen in ("postgresql", "all") and problem is not None:
        raise pytest.UsageError(f"PostgreSQL required but unreachable at {pg_server_url()}: {problem}")
    config.backends = ["sqlite", "postgresql"] if chosen == "all" else [chosen]  # type: ignore[attr-defined]


def pytest_report_header(config: pytest.Config) -> str:
    return f"mlgenai backends: {', '.join(config.backends)} (PostgreSQL server {pg_server_url()})"  # type: ignore[attr-defined]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        backends = metafunc.config.backends  # type: ignore[attr-defined]
        if metafunc.definition.get_closest_marker("postgresql_only"):
            # Behaviour SQLite has no counterpart for (server-side sessions, row locks…): runs
            # whenever PostgreSQL is selected, which CI always does.
            backends = [b for b in backends if b == "postgresql"]
        if metafunc.definition.get_closest_marker("sqlite_only"):
            # The SQLite counterpart of a postgresql_only test (e.g. one process instead of two).
            backends = [b for b in backends if b == "sqlite"]
        metafunc.parametrize("backend", backends, scope="session")


# -- databases -------------------------------------------------------------------------------


def _pg_url(name: str) -> str:
    return make_url(pg_server_url()).set(database=name).render_as_string(hide_password=False)


@dataclass
class Templates:
    sqlite_file: Path
    pg_name: str | None


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Templates]:
    backends = request.config.backends  # type: ignore[attr-defined]
    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{sqlite_file}")
    migrate.upgrade(engine)
    engine.dispose()
    pg_name = None
    admin = None
    if "postgresql" in backends:
        pg_name = f"mlgenai_tmpl_{RUN_ID}"
        admin = make_admin_engine(pg_server_url())
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
        engine = make_engine(_pg_url(pg_name))
        migrate.upgrade(engine)
        engine.dispose()
    yield Templates(sqlite_file, pg_name)
    if admin is not None:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{pg_name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def db_url(backend: str, templates: Templates, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database of ``backend`` for this test."""
    if backend == "sqlite":
        path = tmp_path / "mlgenai.db"
        shutil.copyfile(templates.sqlite_file, path)
        yield f"sqlite:///{path}"
        return
    name = f"mlgenai_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    admin = make_admin_engine(pg_server_url())
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{templates.pg_name}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def empty_db_url(backend: str, tmp_path: Path) -> Iterator[str]:
    """A fresh database of ``backend`` with no schema at all."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    name = f"mlgenai_e_{RUN_ID}_{uuid.uuid4().hex[:10]}"
    admin = make_admin_engine(pg_server_url())
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        yield _pg_url(name)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def database(db_url: str) -> Iterator[Database]:
    db = Database(db_url, pool_size=8)
    yield db
    db.dispose()


# -- server and client -----------------------------------------------------------------------


@pytest.fixture
def server(database: Database) -> Iterator[RunningServer]:
    settings = Settings(address="127.0.0.1:0", database_url="unused", threads=8, log_level="WARNING")
    running = build_server(settings, database)
    yield running
    running.server.stop(None).wait()


@pytest.fixture
def target(server: RunningServer) -> str:
    return f"127.0.0.1:{server.port}"


@pytest.fixture
def client(target: str) -> Iterator[Client]:
    with connect(target, timeout=30) as c:
        yield c
