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


class PgDatabases:
    """PostgreSQL test databases: copies of the migrated template, each reused by one test at
    a time and put back exactly as the template was before the next test gets it.

    ``CREATE DATABASE … TEMPLATE`` costs 0.1–0.7 s on this machine (it writes the whole
    catalog to the WAL and waits for the flush), more than most tests take. Putting a database
    back costs about 15 ms: end every other session on it, delete every row (foreign-key
    triggers off), restore the template's rows (the Default experiment), restart the
    sequences and clear the statistics counters. The schema is never changed by a test that
    uses ``db_url`` (migration tests use ``empty_db_url``); a test that changes it anyway
    fails the check made when its database is put back.
    """

    def __init__(self, template: str) -> None:
        self._template = template
        self._admin = make_admin_engine(pg_server_url())
        self._free: list[str] = []
        self._all: list[str] = []
        engine = make_admin_engine(_pg_url(template))
        with engine.connect() as conn:
            self._tables = [sa.Table(t, sa.MetaData(), autoload_with=conn) for t in self._table_names(conn)]
            self._seed = [(t, [dict(r._mapping) for r in conn.execute(sa.select(t))]) for t in self._tables]
            self._sequences = list(conn.execute(sa.text("SELECT sequencename FROM pg_sequences")).scalars())
            self._shape = self._schema_shape(conn)
        engine.dispose()

    @staticmethod
    def _table_names(conn: sa.Connection) -> list[str]:
        return sorted(sa.inspect(conn).get_table_names())

    @staticmethod
    def _schema_shape(conn: sa.Connection) -> list[tuple[str, str]]:
        query = "SELECT relname, relkind FROM pg_class WHERE relnamespace = 'public'::regnamespace ORDER BY 1"
        return [(r[0], r[1]) for r in conn.execute(sa.text(query))]

    def take(self) -> str:
        if self._free:
            return self._free.pop()
        name = f"mlgenai_t_{RUN_ID}_{uuid.uuid4().hex[:10]}"
        with self._admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{self._template}"'))
        self._all.append(name)
        return name

    def give_back(self, name: str) -> None:
        engine = make_admin_engine(_pg_url(name))
        try:
            with engine.connect() as conn:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                        " WHERE datname = current_database() AND pid <> pg_backend_pid()"
                    )
                )
                assert self._schema_shape(conn) == self._shape, f"a test changed the schema of {name}"
                conn.exec_driver_sql("BEGIN")  # the admin engine autocommits
                conn.exec_driver_sql("SET LOCAL session_replication_role = replica")
                for table in self._tables:
                    conn.execute(sa.delete(table))
                for table, rows in self._seed:
                    if rows:
                        conn.execute(sa.insert(table), rows)
                for sequence in self._sequences:
                    conn.exec_driver_sql(f'ALTER SEQUENCE "{sequence}" RESTART')
                conn.exec_driver_sql("COMMIT")
                conn.execute(sa.text("SELECT pg_stat_reset()"))
        finally:
            engine.dispose()
        self._free.append(name)

    def close(self) -> None:
        with self._admin.connect() as conn:
            for name in self._all:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self._admin.dispose()


@dataclass
class Templates:
    sqlite_file: Path
    pg: PgDatabases | None


@pytest.fixture(scope="session")
def templates(tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest) -> Iterator[Templates]:
    backends = request.config.backends  # type: ignore[attr-defined]
    sqlite_file = tmp_path_factory.mktemp("template") / "template.db"
    engine = make_engine(f"sqlite:///{sqlite_file}")
    migrate.upgrade(engine)
    engine.dispose()
    if "postgresql" not in backends:
        yield Templates(sqlite_file, None)
        return
    pg_name = f"mlgenai_tmpl_{RUN_ID}"
    admin = make_admin_engine(pg_server_url())
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{pg_name}"'))
    engine = make_engine(_pg_url(pg_name))
    migrate.upgrade(engine)
    engine.dispose()
    databases = PgDatabases(pg_name)
    try:
        yield Templates(sqlite_file, databases)
    finally:
        databases.close()
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
    assert templates.pg is not None
    name = templates.pg.take()
    try:
        yield _pg_url(name)
    finally:
        templates.pg.give_back(name)


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
