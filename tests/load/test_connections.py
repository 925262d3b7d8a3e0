"""Spreading one client over a multi-worker server: ``connect(..., connections=N)``.

A server with ``--workers 2`` is two processes on one port; the kernel gives each connection
to one of them, so every call of a one-connection client lands in the same worker. These tests
read which worker served each call from the server's own log (one ``rpc`` line per call, with
its pid).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from loadtest import main as loadtest_main
from mlgenai.client import NotFoundError, connect
from mlgenai.client.channel import PooledChannel
from mlgenai.v1 import experiment_service_pb2 as epb
from server.childproc import ServerProcess
from tests.load.support import wait_for

pytestmark = pytest.mark.slow
CALLS = 48


def _logged_pids(log: Path, msg: str, method: str = "") -> list[int]:
    pids = []
    for line in log.read_text().splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            if record.get("msg") == msg and record.get("method", "").endswith(method):
                pids.append(record["pid"])
    return pids


def _served_pids(log: Path, method: str = "GetExperiment") -> list[int]:
    return _logged_pids(log, "rpc", method)


def _both_listening(srv: ServerProcess, log: Path) -> bool:
    """Both workers have bound the port (a worker that has not yet gets no connection: on a
    loaded machine the second one can start a few seconds after the first)."""
    pids = srv.worker_pids()
    return len(pids) == 2 and set(pids) <= set(_logged_pids(log, "listening"))


def test_one_connection_reaches_one_worker_and_a_pool_reaches_both(db_url: str, tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with ServerProcess(db_url, workers=2, log_level="INFO", log_path=log) as srv:
        wait_for(lambda: _both_listening(srv, log))
        with connect(srv.target, timeout=10) as single:
            for _ in range(CALLS):
                assert single.get_experiment("0")["name"] == "Default"
        wait_for(lambda: len(_served_pids(log)) == CALLS)
        assert len(set(_served_pids(log))) == 1

        # 16 connections all handed to the same worker: a 2**-15 chance.
        with connect(srv.target, timeout=10, connections=16) as pooled:
            assert isinstance(pooled.channel, PooledChannel) and len(pooled.channel.channels) == 16
            for _ in range(CALLS):
                assert pooled.get_experiment("0")["name"] == "Default"
            # the generated stub's other call styles go through the pool too
            response, call = pooled.experiments.GetExperiment.with_call(epb.GetExperimentRequest(experiment_id="0"))
            assert response.name == "Default" and call.code().name == "OK"
            future = pooled.experiments.GetExperiment.future(epb.GetExperimentRequest(experiment_id="0"))
            assert future.result(timeout=10).name == "Default"
            # errors are decoded on every connection as on one
            with pytest.raises(NotFoundError):
                pooled.get_experiment("987654321")
        wait_for(lambda: len(_served_pids(log)) == 2 * CALLS + 3)  # and the NOT_FOUND one
        assert set(_served_pids(log)[CALLS:]) == set(srv.worker_pids())


def test_connections_must_be_positive(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(ValueError, match="connections must be at least 1"):
        connect("127.0.0.1:1", connections=0)
    with pytest.raises(SystemExit) as refused:
        loadtest_main(["--target", "127.0.0.1:1", "--connections", "0"])
    assert refused.value.code == 2 and "--connections" in capsys.readouterr().err


def test_load_generator_spreads_its_calls_over_both_workers(db_url: str, tmp_path: Path) -> None:
    log, report = tmp_path / "server.log", tmp_path / "report.json"
    with ServerProcess(db_url, workers=2, log_level="INFO", log_path=log) as srv:
        wait_for(lambda: _both_listening(srv, log))
        argv = [
            "--target", srv.target, "--scenario", "readers", "--rate", "40", "--concurrency", "8",
            "--connections", "16", "--duration", "1.5", "--warmup", "0", "--seed", "3",
            "--report", str(report), "--no-progress",
        ]  # fmt: skip
        assert loadtest_main(argv) == 0
        workers = set(srv.worker_pids())
    assert json.loads(report.read_text())["config"]["connections"] == 16
    assert set(_served_pids(log, "GetTrace")) == workers
