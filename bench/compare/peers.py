"""The peers of ``make bench-compare``: each installed into its own virtual environment under
``.peers/`` (kept between runs, re-created when the pinned version changes), started on a
loopback port over its own new database on the same PostgreSQL, and stopped afterwards.

MLflow 3.18.0: ``pip install mlflow==3.18.0 'psycopg[binary]'``. When the package index has
``mlflow==3.18.0`` but not yet its ``mlflow-skinny``/``mlflow-tracing`` 3.18.0 (so it was on
this machine's mirror in November 2026), the 3.17.2 halves are installed for their
dependencies, removed, and the full ``mlflow`` 3.18.0 wheel, which holds every module of both,
is installed without dependencies; ``mlflow.__version__`` then says 3.18.0.

Phoenix: ``arize-phoenix[pg]`` (its PostgreSQL driver), started through ``phoenix_serve.py``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import sqlalchemy as sa

from bench.databases import ROOT, postgres_database
from server.childproc import free_port

PEERS_DIR = Path(os.environ.get("MLGENAI_PEERS_DIR", ROOT / ".peers"))
HERE = Path(__file__).resolve().parent
MLFLOW_VERSION = "3.18.0"
MLFLOW_FALLBACK_HALVES = "3.17.2"
PHOENIX_VERSION = "20.26.1"
PIP = ["--quiet", "--disable-pip-version-check"]


@dataclass(frozen=True)
class Peer:
    name: str
    version: str

    @property
    def venv(self) -> Path:
        return PEERS_DIR / self.name

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def stamp(self) -> Path:
        return self.venv / ".installed"


MLFLOW = Peer("mlflow", MLFLOW_VERSION)
PHOENIX = Peer("phoenix", PHOENIX_VERSION)


def _pip(peer: Peer, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(peer.python), "-m", "pip", "install", *PIP, *args], capture_output=True, text=True, check=False
    )


def _checked(result: subprocess.CompletedProcess[str], what: str) -> None:
    if result.returncode != 0:
        raise RuntimeError(f"{what} failed:\n{result.stderr[-3000:]}")


def _install_mlflow() -> str:
    plain = _pip(MLFLOW, f"mlflow=={MLFLOW_VERSION}", "psycopg[binary]")
    if plain.returncode == 0:
        return "pip install mlflow==" + MLFLOW_VERSION
    if "mlflow-skinny" not in plain.stderr and "mlflow-tracing" not in plain.stderr:
        _checked(plain, "pip install mlflow")
    with tempfile.TemporaryDirectory() as tmp:
        _checked(
            subprocess.run(
                [
                    str(MLFLOW.python),
                    "-m",
                    "pip",
                    "download",
                    *PIP,
                    "--no-deps",
                    "-d",
                    tmp,
                    f"mlflow=={MLFLOW_VERSION}",
                ],
                capture_output=True,
                text=True,
                check=False,
            ),
            "pip download mlflow",
        )
        wheel = next(Path(tmp).glob("mlflow-*.whl"))
        requires = subprocess.run(
            [
                str(MLFLOW.python),
                "-c",
                "import json, sys, zipfile, email.parser as p\n"
                "z = zipfile.ZipFile(sys.argv[1])\n"
                "meta = next(n for n in z.namelist() if n.endswith('.dist-info/METADATA'))\n"
                "m = p.Parser().parsestr(z.read(meta).decode())\n"
                "print(json.dumps([r for r in m.get_all('Requires-Dist') or []"
                " if 'extra ==' not in r and not r.startswith('mlflow-')]))",
                str(wheel),
            ],
            capture_output=True,
            text=True,
            check=True,
        )
        halves = [f"mlflow-skinny=={MLFLOW_FALLBACK_HALVES}", f"mlflow-tracing=={MLFLOW_FALLBACK_HALVES}"]
        _checked(_pip(MLFLOW, *halves, *json.loads(requires.stdout), "psycopg[binary]"), "pip install (dependencies)")
        subprocess.run(
            [str(MLFLOW.python), "-m", "pip", "uninstall", "--quiet", "-y", "mlflow-skinny", "mlflow-tracing"],
            capture_output=True,
            check=True,
        )
        _checked(_pip(MLFLOW, "--no-deps", str(wheel)), "pip install the mlflow wheel")
    return f"mlflow {MLFLOW_VERSION} wheel over the dependencies of mlflow-skinny {MLFLOW_FALLBACK_HALVES}"


def ensure_installed(peer: Peer) -> str:
    """Install ``peer`` unless its venv already holds this version; how it was installed."""
    if peer.stamp.exists():
        recorded = json.loads(peer.stamp.read_text())
        if recorded.get("version") == peer.version:
            return str(recorded["how"])
    shutil.rmtree(peer.venv, ignore_errors=True)
    print(f"installing {peer.name} {peer.version} into {peer.venv} (a few minutes, once)", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(peer.venv)], check=True)
    if peer is MLFLOW:
        how = _install_mlflow()
    else:
        _checked(_pip(peer, f"arize-phoenix[pg]=={PHOENIX_VERSION}", "psycopg[binary]"), "pip install arize-phoenix")
        how = f"pip install arize-phoenix[pg]=={PHOENIX_VERSION}"
    version = subprocess.run(
        [str(peer.python), "-c", f"import {'phoenix' if peer is PHOENIX else 'mlflow'} as m; print(m.__version__)"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    if version != peer.version:
        raise RuntimeError(f"{peer.name} reports version {version}, not {peer.version}")
    peer.stamp.write_text(json.dumps({"version": peer.version, "how": how}))
    return how


@contextlib.contextmanager
def peer_database(name: str) -> Iterator[str]:
    """A new, empty PostgreSQL database for one peer; its plain ``postgresql://`` DSN."""
    with postgres_database(name) as url:
        yield sa.make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout_s: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {proc.returncode}; see {log_path}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError(f"{url} did not answer within {timeout_s:.0f} s; see {log_path}")


@contextlib.contextmanager
def _running(args: list[str], env: dict[str, str], health: str, log_path: Path) -> Iterator[None]:
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(args, env={**os.environ, **env}, stdout=log, stderr=log, start_new_session=True)
    try:
        _wait_http(health, proc, 180, log_path)
        yield
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, 15)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, 9)
                proc.wait()


@dataclass(frozen=True)
class MlflowServer:
    tracking_uri: str
    dsn: str


@contextlib.contextmanager
def mlflow_server(dsn: str, workers: int, work_dir: Path) -> Iterator[MlflowServer]:
    port = free_port()
    artifacts = work_dir / f"mlflow-artifacts-w{workers}"
    artifacts.mkdir(parents=True, exist_ok=True)
    args = [
        str(MLFLOW.venv / "bin" / "mlflow"),
        "server",
        "--backend-store-uri",
        dsn,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
    ]
    with _running(args, {}, f"http://127.0.0.1:{port}/health", work_dir / f"mlflow-w{workers}.log"):
        yield MlflowServer(f"http://127.0.0.1:{port}", dsn)


@dataclass(frozen=True)
class PhoenixServer:
    base_url: str
    grpc_target: str
    dsn: str


@contextlib.contextmanager
def phoenix_server(dsn: str, work_dir: Path) -> Iterator[PhoenixServer]:
    port, grpc_port = free_port(), free_port()
    env = {
        "PHOENIX_SQL_DATABASE_URL": dsn,
        "PHOENIX_HOST": "127.0.0.1",
        "PHOENIX_PORT": str(port),
        "PHOENIX_GRPC_PORT": str(grpc_port),
        "PHOENIX_WORKING_DIR": str(work_dir / "phoenix"),
    }
    args = [str(PHOENIX.python), str(HERE / "phoenix_serve.py")]
    with _running(args, env, f"http://127.0.0.1:{port}/healthz", work_dir / "phoenix.log"):
        yield PhoenixServer(f"http://127.0.0.1:{port}", f"127.0.0.1:{grpc_port}", dsn)
