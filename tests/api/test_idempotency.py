"""request_id idempotency of CreateExperiment (SPEC §1.8) through the real server."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import Client, MlgenaiError, connect
from mlgenai.v1 import experiment_pb2, experiment_service_pb2 as pb, experiment_service_pb2_grpc
from store.uow import Database
from tests.helpers import count_rows, expect_error, snapshot

TABLES = ("experiments", "experiment_tags", "request_ids")
THREADS = 8


def create(client: Client, request_id: str, name: str = "agent", **fields: Any) -> experiment_pb2.Experiment:
    req = pb.CreateExperimentRequest(name=name, request_id=request_id, **fields)
    return client.experiments.CreateExperiment(req)


def rid_rows(db: Database, request_id: str) -> int:
    return count_rows(db, "request_ids", f"request_id = '{request_id.lower()}'")


def test_same_request_id_returns_the_first_result(client: Client, database: Database) -> None:
    rid = str(uuid.uuid4())
    first = create(client, rid, tags={"env": "prod"}, artifact_location="s3://b/p")
    state = snapshot(database, *TABLES)
    second = create(client, rid, tags={"env": "prod"}, artifact_location="s3://b/p")
    assert second == first
    assert snapshot(database, *TABLES) == state
    assert count_rows(database, "experiments", "name = 'agent'") == 1
    assert count_rows(database, "experiment_tags") == 1
    assert count_rows(database, "request_ids") == 1
    assert rid_rows(database, rid) == 1


def test_replay_returns_the_first_result_even_after_later_changes(client: Client, database: Database) -> None:
    rid = str(uuid.uuid4())
    first = create(client, rid)
    client.rename_experiment(first.experiment_id, "renamed")
    state = snapshot(database, *TABLES)
    assert create(client, rid) == first
    assert snapshot(database, *TABLES) == state
    assert client.get_experiment(first.experiment_id)["name"] == "renamed"
    assert count_rows(database, "experiments") == 2


def test_explicit_request_id_through_the_helper(client: Client, database: Database) -> None:
    rid = str(uuid.uuid4())
    first = client.create_experiment("helper", tags={"a": "1"}, request_id=rid)
    second = client.create_experiment("helper", tags={"a": "1"}, request_id=rid)
    assert second == first
    assert count_rows(database, "experiments", "name = 'helper'") == 1
    assert rid_rows(database, rid) == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"name": "other-name"},
        {"tags": {"env": "prod", "extra": "x"}},
        {"tags": {"env": "dev"}},
        {"tags": {}},
        {"artifact_location": "s3://elsewhere"},
    ],
    ids=["name", "extra-tag", "tag-value", "no-tags", "artifact-location"],
)
def test_same_request_id_with_another_body(client: Client, database: Database, changed: dict[str, Any]) -> None:
    rid = str(uuid.uuid4())
    first = create(client, rid, tags={"env": "prod"})
    state = snapshot(database, *TABLES)
    body: dict[str, Any] = {"name": "agent", "tags": {"env": "prod"}, **changed}
    name = body.pop("name")
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
        lambda: create(client, rid, name, **body),
        field="request_id",
    )
    assert snapshot(database, *TABLES) == state
    # The original request still replays.
    assert create(client, rid, tags={"env": "prod"}) == first


def test_failed_call_does_not_claim_its_request_id(client: Client, database: Database) -> None:
    holder = client.create_experiment("taken")
    rid = str(uuid.uuid4())
    requests_before = count_rows(database, "request_ids")
    for _ in range(2):  # the failure repeats as a failure, not as a replay or REQUEST_ID_REUSED
        expect_error(grpc.StatusCode.ALREADY_EXISTS, "EXPERIMENT_ALREADY_EXISTS", lambda: create(client, rid, "taken"))
        assert rid_rows(database, rid) == 0
    assert count_rows(database, "request_ids") == requests_before

    # Once the name is free, the same request with the same id succeeds, then replays.
    client.rename_experiment(holder["experiment_id"], "moved")
    created = create(client, rid, "taken")
    assert created.experiment_id != holder["experiment_id"]
    assert create(client, rid, "taken") == created
    assert rid_rows(database, rid) == 1
    assert count_rows(database, "experiments", "name = 'taken'") == 1


def test_rejected_input_does_not_claim_its_request_id(client: Client, database: Database) -> None:
    rid = str(uuid.uuid4())
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", lambda: create(client, rid, ""), field="name")
    assert rid_rows(database, rid) == 0
    # The same id then serves a different (valid) body: the rejected call never used it.
    created = create(client, rid, "valid")
    assert created.name == "valid"
    assert rid_rows(database, rid) == 1


def test_request_id_is_optional(target: str, database: Database) -> None:
    """Without the client's interceptor no request_id is sent: the call is a plain write."""
    with grpc.insecure_channel(target) as channel:
        stub = experiment_service_pb2_grpc.ExperimentServiceStub(channel)
        created = stub.CreateExperiment(pb.CreateExperimentRequest(name="no-rid"), timeout=30)
        assert created.name == "no-rid"
        with pytest.raises(grpc.RpcError) as info:
            stub.CreateExperiment(pb.CreateExperimentRequest(name="no-rid"), timeout=30)
        assert info.value.code() == grpc.StatusCode.ALREADY_EXISTS  # type: ignore[attr-defined]
    assert count_rows(database, "request_ids") == 0
    assert count_rows(database, "experiments", "name = 'no-rid'") == 1


def test_client_fills_a_fresh_request_id(client: Client, database: Database) -> None:
    first = client.create_experiment("same-name")
    assert count_rows(database, "request_ids") == 1
    # A second helper call is a new request (new id), not a replay of the first.
    expect_error(
        grpc.StatusCode.ALREADY_EXISTS, "EXPERIMENT_ALREADY_EXISTS", lambda: client.create_experiment("same-name")
    )
    client.create_experiment("other-name")
    with database.engine.connect() as conn:
        ids = [r[0] for r in conn.execute(sa.text("SELECT request_id FROM request_ids"))]
    assert len(ids) == len(set(ids)) == 2
    assert all(str(uuid.UUID(i)) == i.lower() for i in ids)
    assert count_rows(database, "experiments", "name = 'same-name'") == 1
    assert client.get_experiment_by_name("same-name") == first


def test_every_call_style_gets_request_ids_and_decoded_errors(client: Client, database: Database) -> None:
    """``with_call`` and ``future`` fill a fresh request_id and decode errors as a plain call does;
    a future's failure is reported by the future (the call itself does not wait for it)."""
    stub = client.experiments.CreateExperiment
    request = pb.CreateExperimentRequest(name="styled")
    created, call = stub.with_call(request)
    assert created.name == "styled" and call.code() == grpc.StatusCode.OK
    assert request.request_id == ""  # the caller's message is not altered
    future = stub.future(pb.CreateExperimentRequest(name="styled-future"))
    assert future.result(timeout=30).name == "styled-future" and future.exception() is None
    # grpc's other arguments pass through by position too: timeout, then metadata
    positional = stub(pb.CreateExperimentRequest(name="styled-positional"), 30, (("x-test", "1"),))
    assert positional.name == "styled-positional"
    assert count_rows(database, "request_ids") == 3

    failing = stub.future(pb.CreateExperimentRequest(name="styled"))
    done = threading.Event()
    failing.add_done_callback(lambda f: done.set() if f is failing else None)
    assert done.wait(30)
    error = failing.exception(timeout=30)
    assert isinstance(error, MlgenaiError) and error.reason == "EXPERIMENT_ALREADY_EXISTS"
    with pytest.raises(MlgenaiError) as raised:
        failing.result(timeout=30)
    assert raised.value.code() == grpc.StatusCode.ALREADY_EXISTS and raised.value.reason == "EXPERIMENT_ALREADY_EXISTS"
    with pytest.raises(MlgenaiError) as raised:
        stub.with_call(pb.CreateExperimentRequest(name=""))
    assert raised.value.reason == "INVALID_FIELD"
    assert count_rows(database, "experiments", "name LIKE 'styled%'") == 3
    assert count_rows(database, "request_ids") == 3  # failed and rejected calls store nothing


# -- concurrency ---------------------------------------------------------------------------


def _race(target: str, calls: list[Callable[[Client], Any]]) -> list[Any]:
    """Run each call on its own connection, all released at once; results or MlgenaiErrors."""
    barrier = threading.Barrier(len(calls))
    clients = [connect(target, timeout=60) for _ in calls]

    def run(i: int) -> Any:
        barrier.wait(timeout=30)
        try:
            return calls[i](clients[i])
        except MlgenaiError as err:
            return err

    try:
        with ThreadPoolExecutor(max_workers=len(calls)) as pool:
            return list(pool.map(run, range(len(calls))))
    finally:
        for c in clients:
            c.close()


@pytest.mark.parametrize("round_", range(3))
def test_concurrent_retries_create_once(target: str, database: Database, round_: int) -> None:
    rid = str(uuid.uuid4())
    name = f"raced-{round_}"
    results = _race(target, [lambda c: create(c, rid, name, tags={"k": "v"})] * THREADS)
    errors = [r for r in results if isinstance(r, MlgenaiError)]
    assert errors == []
    assert all(r == results[0] for r in results)
    assert results[0].name == name and results[0].tags == {"k": "v"}
    assert count_rows(database, "experiments", f"name = '{name}'") == 1
    assert count_rows(database, "experiments") == 2
    assert count_rows(database, "experiment_tags") == 1
    assert rid_rows(database, rid) == 1


def test_concurrent_different_bodies_under_one_request_id(target: str, database: Database) -> None:
    rid = str(uuid.uuid4())

    def body(i: int) -> Callable[[Client], Any]:
        return lambda c: create(c, rid, f"body-{i}")

    calls = [body(i) for i in range(THREADS)]
    results = _race(target, calls)
    created = [r for r in results if isinstance(r, experiment_pb2.Experiment)]
    reused = [r for r in results if isinstance(r, MlgenaiError)]
    assert len(created) == 1
    assert len(reused) == THREADS - 1
    assert all(e.code() == grpc.StatusCode.INVALID_ARGUMENT and e.reason == "REQUEST_ID_REUSED" for e in reused)
    assert count_rows(database, "experiments") == 2
    assert count_rows(database, "experiments", f"name = '{created[0].name}'") == 1
    assert rid_rows(database, rid) == 1
