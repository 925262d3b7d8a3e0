"""A PostgreSQL cluster of the test's own, on a free loopback port, that the test may stop,
restart or break without disturbing the machine's server or the other tests.

``initdb`` refuses to run as root, so under root (CI) the cluster belongs to the ``postgres``
user and its commands run through ``runuser``; under any other user it is that user's.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import sqlalchemy as sa

from server.childproc import free_port
from store import migrate
from store.engine import make_admin_engine, make_engine

PG_BIN = Path("/usr/lib/postgresql")


def pg_bin_dir() -> Path:
    """The newest installed PostgreSQL's bin directory (Debian layout), or the one on PATH."""
    versions = sorted((p for p in PG_BIN.glob("*/bin") if (p / "initdb").exists()), key=lambda p: int(p.parent.name))
    if versions:
        return versions[-1]
    found = shutil.which("initdb")
    if found is None:
        raise RuntimeError("initdb not found: PostgreSQL server binaries are required for the fault tests")
    return Path(found).parent


class PrivateCluster:
    """``initdb`` + ``pg_ctl`` on a temporary directory; ``url`` is a migrated database on it."""

    def __init__(self) -> None:
        self.root = Path(tempfile.mkdtemp(prefix="mlgenai-pg-"))
        self.data = self.root / "data"
        self.port = free_port()
        self.bin = pg_bin_dir()
        self.url = f"postgresql+psycopg://postgres@127.0.0.1:{self.port}/mlgenai"
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
        self.root.chmod(0o700)

    def _run(self, tool: str, *args: str) -> None:
        command = [str(self.bin / tool), *args]
        if os.geteuid() == 0:
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, capture_output=True, timeout=120)

    def create(self) -> PrivateCluster:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "-A", "trust", "--no-sync")
        self.start()
        admin = make_admin_engine(self.url.rsplit("/", 1)[0] + "/postgres")
        with admin.connect() as conn:
            conn.execute(sa.text("CREATE DATABASE mlgenai"))
        admin.dispose()
        engine = make_engine(self.url)
        migrate.upgrade(engine)
        engine.dispose()
        return self

    def start(self) -> None:
        options = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.root} -c max_connections=50"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "log"), "-o", options, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", mode, "-w", "stop")

    def destroy(self) -> None:
        with contextlib.suppress(subprocess.CalledProcessError):  # not running
            self.stop("immediate")
        shutil.rmtree(self.root, ignore_errors=True)
