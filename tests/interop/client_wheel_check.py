"""CI check: the mlgenai-client wheel works on its own.

Usage: ``python -m tests.interop.client_wheel_check client/dist/mlgenai_client-*.whl``

Creates a fresh virtual environment, installs only the wheel there (so nothing of the server
is importable), starts a server from this environment on a temporary SQLite file, and runs a
script in the fresh environment that creates, reads, tags and searches experiments through
``mlgenai.client`` and checks a decoded error. Exits non-zero on any failure.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import textwrap
import venv
from pathlib import Path

from server.childproc import ServerProcess

SMOKE = textwrap.dedent(
    """
    import importlib.util, sys
    from mlgenai.client import connect, NotFoundError, InvalidArgumentError
    from mlgenai.v1 import experiment_service_pb2 as pb

    assert importlib.util.find_spec("server") is None, "server package leaked into the client venv"
    assert importlib.util.find_spec("store") is None, "store package leaked into the client venv"
    with connect(sys.argv[1], timeout=10) as client:
        exp = client.create_experiment("wheel-check", tags={"from": "wheel"})
        assert exp["name"] == "wheel-check" and exp["lifecycle_stage"] == "ACTIVE", exp
        got = client.experiments.GetExperiment(pb.GetExperimentRequest(experiment_id=exp["experiment_id"]))
        assert got.tags["from"] == "wheel", got
        client.set_experiment_tag(exp["experiment_id"], "k", "v")
        found = [e["name"] for e in client.search_experiments("tags.k = 'v'")]
        assert found == ["wheel-check"], found
        try:
            client.get_experiment("987654321")
            raise AssertionError("expected NOT_FOUND")
        except NotFoundError as err:
            assert err.reason == "EXPERIMENT_NOT_FOUND", err
        try:
            client.create_experiment("")
            raise AssertionError("expected INVALID_ARGUMENT")
        except InvalidArgumentError as err:
            assert [v.field for v in err.violations] == ["name"], err.violations
    print("client wheel OK")
    """
)


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print(__doc__, file=sys.stderr)
        return 2
    wheel = Path(argv[0]).resolve()
    with tempfile.TemporaryDirectory(prefix="mlgenai-wheel-") as tmp:
        env_dir = Path(tmp) / "venv"
        venv.create(env_dir, with_pip=True)
        py = env_dir / "bin" / "python"
        pip_env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"}
        subprocess.run([str(py), "-m", "pip", "install", "--quiet", str(wheel)], check=True, env=pip_env)
        with ServerProcess(f"sqlite:///{tmp}/wheel.db") as srv:
            clean_env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
            result = subprocess.run(
                [str(py), "-c", SMOKE, srv.target], env=clean_env, cwd=tmp, capture_output=True, text=True, check=False
            )
            sys.stdout.write(result.stdout)
            sys.stderr.write(result.stderr)
            return result.returncode


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
