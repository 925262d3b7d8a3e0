"""Concurrent creators of one model name get versions 1..N: no gap, no duplicate (SPEC §6)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from mlgenai.client import Client, connect
from server.app import RunningServer
from server.childproc import ServerProcess
from store.uow import Database
from tests.helpers import count_rows

THREADS = 8


def test_threads_creating_one_name_get_versions_1_to_n(
    client: Client, server: RunningServer, database: Database
) -> None:
    exp = str(client.create_experiment("contended")["experiment_id"])
    per_thread = 3
    start = threading.Barrier(THREADS)
    target = f"127.0.0.1:{server.port}"

    def creator(n: int) -> list[int]:
        with connect(target, timeout=60) as own:  # one channel per caller
            start.wait()
            return [own.create_logged_model(exp, "agent", params={"n": str(n)})["version"] for _ in range(per_thread)]

    with ThreadPoolExecutor(THREADS) as pool:
        got = [v for vs in pool.map(creator, range(THREADS)) for v in vs]
    total = THREADS * per_thread
    assert sorted(got) == list(range(1, total + 1))
    stored = sorted(m["version"] for m in client.search_logged_models([exp], "name = 'agent'"))
    assert stored == list(range(1, total + 1))
    assert count_rows(database, "logged_model_names") == 1
    assert count_rows(database, "logged_model_names", f"last_version = {total}") == 1


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_two_server_processes_number_40_models_without_gaps(backend: str, db_url: str) -> None:
    models = 40
    with ServerProcess(db_url) as first, ServerProcess(db_url) as second:
        targets = [first.target, second.target]
        with connect(first.target, timeout=120) as client:
            exp = str(client.create_experiment("two-processes")["experiment_id"])
        start = threading.Barrier(THREADS)

        def creator(n: int) -> list[tuple[str, int]]:
            with connect(targets[n % 2], timeout=120) as own:  # half the callers on each process
                start.wait()
                made = [own.create_logged_model(exp, "shared") for _ in range(models // THREADS)]
            return [(m["model_id"], m["version"]) for m in made]

        with ThreadPoolExecutor(THREADS) as pool:
            created = [pair for pairs in pool.map(creator, range(THREADS)) for pair in pairs]
        with connect(second.target, timeout=120) as client:
            stored = {m["model_id"]: m["version"] for m in client.search_logged_models([exp], "name = 'shared'")}
            fresh = client.create_logged_model(exp, "shared")["version"]
    assert sorted(v for _, v in created) == list(range(1, models + 1))
    assert stored == dict(created)
    assert fresh == models + 1
