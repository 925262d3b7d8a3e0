"""EvaluationRunService through the real server (SPEC §7): create, pin, get, update, delete,
params, metrics, tags, and the experiment delete/undelete cascade.

Rejected input is in ``test_runs_bad_input.py``, search in ``test_runs_search.py``, trace links
in ``test_trace_run_links.py``.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable

import grpc
import pytest
import sqlalchemy as sa
from google.protobuf import field_mask_pb2

from mlgenai.client import Client
from mlgenai.v1 import evaluation_run_pb2 as rpb, evaluation_run_service_pb2 as pb
from store.uow import Database
from tests.api.run_support import (
    at,
    dataset_with_versions,
    history,
    logged_model,
    ms,
    now_ms,
    stored_map,
    stored_run,
)
from tests.helpers import count_rows, expect_error

FP = grpc.StatusCode.FAILED_PRECONDITION
NF = grpc.StatusCode.NOT_FOUND


@pytest.fixture
def exp_id(client: Client) -> str:
    return str(client.create_experiment("evals")["experiment_id"])


def set_update_time(db: Database, run_id: str, value: int) -> None:
    with db.engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET update_time = :t WHERE run_id = :id"), {"t": value, "id": run_id})


# -- create / get ----------------------------------------------------------------------------


def test_create_returns_every_field(client: Client, database: Database, exp_id: str) -> None:
    model_id = logged_model(database, exp_id)
    before = now_ms()
    run = client.create_run(exp_id, "baseline", model_id=model_id, params={"lr": "0.1"}, tags={"team": "qa"})
    after = now_ms()
    assert len(run["run_id"]) == 32 and int(run["run_id"], 16) >= 0 and run["run_id"] == run["run_id"].lower()
    assert run["experiment_id"] == exp_id
    assert run["name"] == "baseline"
    assert run["status"] == "RUNNING"
    assert before <= ms(run["start_time"]) <= after
    assert run["end_time"] is None
    assert run["params"] == {"lr": "0.1"} and run["tags"] == {"team": "qa"}
    assert run["metrics"] == [] and run["dataset"] is None
    assert run["model_id"] == model_id
    assert run["lifecycle_stage"] == "ACTIVE"
    assert run["update_time"] == run["start_time"]
    assert client.get_run(run["run_id"]) == run
    row = stored_run(database, run["run_id"])
    assert (row.status, row.lifecycle_stage, bool(row.deleted_with_experiment)) == ("RUNNING", "active", False)
    assert stored_map(database, "run_params", run["run_id"]) == {"lr": "0.1"}
    assert stored_map(database, "run_tags", run["run_id"]) == {"team": "qa"}


def test_create_without_name_gets_a_random_one(client: Client, exp_id: str) -> None:
    names = {client.create_run(exp_id)["name"] for _ in range(3)}
    assert all(len(n.split("-")) == 3 and n.split("-")[2].isdigit() for n in names)


def test_create_ids_are_distinct(client: Client, exp_id: str) -> None:
    assert len({client.create_run(exp_id)["run_id"] for _ in range(5)}) == 5


def test_create_pins_the_current_dataset_version(client: Client, exp_id: str) -> None:
    dataset_id, digests = dataset_with_versions(client, exp_id, 3)
    run = client.create_run(exp_id, dataset_id=dataset_id)
    assert run["dataset"] == {"dataset_id": dataset_id, "dataset_version": 3, "digest": digests[3]}
    # The dataset moves on; the run keeps its pin.
    client.merge_records(dataset_id, [{"inputs": {"q": "later"}}])
    assert client.get_run(run["run_id"])["dataset"]["dataset_version"] == 3


@pytest.mark.parametrize("version", [1, 2, 3])
def test_create_pins_an_earlier_version_with_its_digest(client: Client, exp_id: str, version: int) -> None:
    dataset_id, digests = dataset_with_versions(client, exp_id, 3)
    run = client.create_run(exp_id, dataset_id=dataset_id, dataset_version=version)
    assert run["dataset"] == {"dataset_id": dataset_id, "dataset_version": version, "digest": digests[version]}
    assert len({*digests}) == 4


def test_create_pins_version_zero_of_an_empty_dataset(client: Client, exp_id: str) -> None:
    ds = client.create_dataset("empty", experiment_ids=[exp_id])
    run = client.create_run(exp_id, dataset_id=ds["dataset_id"])
    assert run["dataset"] == {"dataset_id": ds["dataset_id"], "dataset_version": 0, "digest": ds["digest"]}


def test_create_is_idempotent_with_request_id(client: Client, database: Database, exp_id: str) -> None:
    request_id = str(uuid.uuid4())
    first = client.create_run(exp_id, params={"a": "1"}, request_id=request_id)
    again = client.create_run(exp_id, params={"a": "1"}, request_id=request_id)
    assert again == first
    assert count_rows(database, "runs") == 1
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
        lambda: client.create_run(exp_id, params={"a": "2"}, request_id=request_id),
    )


def test_get_unknown_run(client: Client) -> None:
    err = expect_error(NF, "RUN_NOT_FOUND", lambda: client.get_run("a" * 32))
    assert err.metadata["run_id"] == "a" * 32


# -- update ----------------------------------------------------------------------------------


def test_update_name(client: Client, database: Database, exp_id: str) -> None:
    run = client.create_run(exp_id, "old")
    set_update_time(database, run["run_id"], 1)
    got = client.update_run(run["run_id"], name="new")
    assert got["name"] == "new" and got["status"] == "RUNNING" and got["end_time"] is None
    assert ms(got["update_time"]) > 1


@pytest.mark.parametrize("status", ["FINISHED", "FAILED", "KILLED"])
def test_terminal_status_sets_end_time(client: Client, exp_id: str, status: str) -> None:
    run = client.create_run(exp_id)
    before = now_ms()
    got = client.update_run(run["run_id"], status=status)
    assert got["status"] == status
    assert before <= ms(got["end_time"]) <= now_ms()


def test_given_end_time_is_kept(client: Client, exp_id: str) -> None:
    run = client.create_run(exp_id)
    end = ms(run["start_time"]) + 5_000
    got = client.update_run(run["run_id"], status="FINISHED", end_time=at(end))
    assert ms(got["end_time"]) == end
    # A later status change of an ended run keeps its end time; back to RUNNING clears it.
    assert ms(client.update_run(run["run_id"], status="FAILED")["end_time"]) == end
    assert client.update_run(run["run_id"], status="RUNNING")["end_time"] is None


def test_end_time_equal_to_start_is_accepted(client: Client, exp_id: str) -> None:
    run = client.create_run(exp_id)
    got = client.update_run(run["run_id"], end_time=run["start_time"])
    assert got["end_time"] == run["start_time"]


def test_update_with_empty_mask_applies_set_fields(client: Client, exp_id: str) -> None:
    run = client.create_run(exp_id, "a")
    req = pb.UpdateRunRequest(run=rpb.EvaluationRun(run_id=run["run_id"], name="b", status=rpb.RUN_STATUS_KILLED))
    got = client.runs.UpdateRun(req)
    assert got.name == "b" and got.status == rpb.RUN_STATUS_KILLED and got.HasField("end_time")


def test_update_ignores_output_only_paths(client: Client, exp_id: str) -> None:
    run = client.create_run(exp_id, "a")
    req = pb.UpdateRunRequest(
        run=rpb.EvaluationRun(run_id=run["run_id"], name="b", lifecycle_stage=2),  # type: ignore[arg-type]
        update_mask=field_mask_pb2.FieldMask(paths=["name", "lifecycle_stage", "metrics", "update_time"]),
    )
    got = client.runs.UpdateRun(req)
    assert got.name == "b" and got.lifecycle_stage == 1


def test_update_of_deleted_run(client: Client, database: Database, exp_id: str) -> None:
    run = client.create_run(exp_id, "a")
    client.delete_run(run["run_id"])
    expect_error(FP, "RUN_DELETED", lambda: client.update_run(run["run_id"], name="b"))
    assert stored_run(database, run["run_id"]).name == "a"


# -- delete / undelete -----------------------------------------------------------------------


def test_delete_and_undelete_are_soft_and_idempotent(client: Client, database: Database, exp_id: str) -> None:
    run = client.create_run(exp_id, params={"p": "1"})
    for _ in range(2):
        got = client.delete_run(run["run_id"])
        assert got["lifecycle_stage"] == "DELETED" and got["params"] == {"p": "1"}
    assert client.get_run(run["run_id"])["lifecycle_stage"] == "DELETED"
    assert count_rows(database, "runs") == 1
    for _ in range(2):
        assert client.undelete_run(run["run_id"])["lifecycle_stage"] == "ACTIVE"
    expect_error(NF, "RUN_NOT_FOUND", lambda: client.delete_run("b" * 32))
    expect_error(NF, "RUN_NOT_FOUND", lambda: client.undelete_run("b" * 32))


@pytest.mark.parametrize(
    "write",
    [
        lambda c, r: c.log_params(r, {"k": "v"}),
        lambda c, r: c.log_metrics(r, {"m": 1.0}),
        lambda c, r: c.set_run_tag(r, "k", "v"),
        lambda c, r: c.delete_run_tag(r, "k"),
    ],
)
def test_writes_into_deleted_run(client: Client, database: Database, exp_id: str, write: object) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    client.delete_run(run_id)
    expect_error(FP, "RUN_DELETED", lambda: write(client, run_id))  # type: ignore[operator]
    for table in ("run_params", "run_metrics", "run_latest_metrics", "run_tags"):
        assert count_rows(database, table) == 0
    expect_error(NF, "RUN_NOT_FOUND", lambda: write(client, "c" * 32))  # type: ignore[operator]


def test_experiment_delete_cascades_and_undelete_restores(client: Client, database: Database, exp_id: str) -> None:
    kept = client.create_run(exp_id, "kept")["run_id"]
    alone = client.create_run(exp_id, "deleted-alone")["run_id"]
    other_exp = client.create_experiment("other")["experiment_id"]
    other = client.create_run(other_exp, "other")["run_id"]
    client.delete_run(alone)

    client.delete_experiment(exp_id)
    assert client.get_run(kept)["lifecycle_stage"] == "DELETED"
    assert bool(stored_run(database, kept).deleted_with_experiment)
    assert not bool(stored_run(database, alone).deleted_with_experiment)
    assert client.get_run(other)["lifecycle_stage"] == "ACTIVE"
    expect_error(FP, "EXPERIMENT_DELETED", lambda: client.create_run(exp_id))
    expect_error(FP, "EXPERIMENT_DELETED", lambda: client.undelete_run(kept))
    expect_error(FP, "EXPERIMENT_DELETED", lambda: client.undelete_run(alone))
    expect_error(FP, "RUN_DELETED", lambda: client.log_params(kept, {"a": "b"}))
    client.delete_experiment(exp_id)  # idempotent: changes nothing

    client.undelete_experiment(exp_id)
    assert client.get_run(kept)["lifecycle_stage"] == "ACTIVE"
    assert not bool(stored_run(database, kept).deleted_with_experiment)
    assert client.get_run(alone)["lifecycle_stage"] == "DELETED"
    assert client.get_run(other)["lifecycle_stage"] == "ACTIVE"
    assert client.undelete_run(alone)["lifecycle_stage"] == "ACTIVE"


def test_run_deleted_after_its_experiment_stays_deleted(client: Client, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    client.delete_experiment(exp_id)
    client.delete_run(run_id)  # an explicit delete too: restoring the experiment keeps it deleted
    client.undelete_experiment(exp_id)
    assert client.get_run(run_id)["lifecycle_stage"] == "DELETED"


# -- params ----------------------------------------------------------------------------------


def test_params_are_write_once(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id, params={"a": "1"})["run_id"]
    client.log_params(run_id, {"a": "1", "b": "2"})
    client.log_params(run_id, {"b": "2"})
    assert client.get_run(run_id)["params"] == {"a": "1", "b": "2"}
    err = expect_error(FP, "PARAM_ALREADY_SET", lambda: client.log_params(run_id, {"c": "3", "a": "other"}))
    assert err.metadata["keys"] == "a"
    assert stored_map(database, "run_params", run_id) == {"a": "1", "b": "2"}


def test_log_1000_params(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    params = {f"p{i:04d}": "v" * (i % 7) for i in range(1_000)}
    client.log_params(run_id, params)
    assert client.get_run(run_id)["params"] == params
    assert count_rows(database, "run_params") == 1_000


def test_writes_bump_update_time(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    writes: list[Callable[[], None]] = [
        lambda: client.log_params(run_id, {"x": "1"}),
        lambda: client.log_metrics(run_id, {"m": 1.0}),
        lambda: client.set_run_tag(run_id, "t", "1"),
        lambda: client.delete_run_tag(run_id, "t"),
    ]
    for write in writes:
        set_update_time(database, run_id, 1)
        write()
        assert stored_run(database, run_id).update_time > 1


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_history_and_latest(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    t0 = now_ms() - 100_000
    client.log_metrics(
        run_id,
        [
            {"name": "loss", "value": 3.0, "step": 1, "time": at(t0)},
            {"name": "loss", "value": 2.0, "step": 2, "time": at(t0)},
            {"name": "acc", "value": 0.5, "step": 0, "time": at(t0 + 5)},
        ],
    )
    # An older step arriving late is history only.
    client.log_metrics(run_id, [{"name": "loss", "value": 9.0, "step": 1, "time": at(t0 + 10)}])
    # Same step, later time replaces; same step and time replaces too (the later call wins).
    client.log_metrics(run_id, [{"name": "acc", "value": 0.6, "step": 0, "time": at(t0 + 6)}])
    client.log_metrics(run_id, [{"name": "acc", "value": 0.7, "step": 0, "time": at(t0 + 6)}])
    client.log_metrics(run_id, [{"name": "acc", "value": 0.1, "step": 0, "time": at(t0 + 1)}])
    metrics = client.get_run(run_id)["metrics"]
    assert [(m["name"], m["value"], m["step"], ms(m["time"])) for m in metrics] == [
        ("acc", 0.7, 0, t0 + 6),
        ("loss", 2.0, 2, t0),
    ]
    assert len(history(database, run_id)) == 7
    assert count_rows(database, "run_latest_metrics") == 2


def test_metrics_in_one_call_keep_the_latest_of_the_call(client: Client, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    t = now_ms() - 1000
    client.log_metrics(
        run_id,
        [
            {"name": "m", "value": 5.0, "step": 3, "time": at(t)},
            {"name": "m", "value": 1.0, "step": 1, "time": at(t + 50)},
            {"name": "m", "value": 6.0, "step": 3, "time": at(t)},
        ],
    )
    assert [m["value"] for m in client.get_run(run_id)["metrics"]] == [6.0]


def test_metric_defaults_step_zero_and_server_time(client: Client, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    before = now_ms()
    client.log_metrics(run_id, {"a": 1.5, "b": -2})
    got = client.get_run(run_id)["metrics"]
    assert [(m["name"], m["value"], m["step"]) for m in got] == [("a", 1.5, 0), ("b", -2.0, 0)]
    assert all(before <= ms(m["time"]) <= now_ms() for m in got)


def test_nan_and_infinities_round_trip(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    client.log_metrics(run_id, {"nan": math.nan, "pos": math.inf, "neg": -math.inf, "tiny": 5e-324})
    got = {m["name"]: m["value"] for m in client.get_run(run_id)["metrics"]}
    assert math.isnan(got["nan"])
    assert got["pos"] == math.inf and got["neg"] == -math.inf and got["tiny"] == 5e-324
    stored = {name: value for name, value, _, _ in history(database, run_id)}
    assert stored["nan"] is None and stored["pos"] == math.inf


def test_log_1000_metrics(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    client.log_metrics(run_id, [{"name": f"m{i % 10}", "value": float(i), "step": i} for i in range(1_000)])
    got = client.get_run(run_id)["metrics"]
    assert [(m["name"], m["value"]) for m in got] == [(f"m{i}", float(990 + i)) for i in range(10)]
    assert count_rows(database, "run_metrics") == 1_000


# -- tags ------------------------------------------------------------------------------------


def test_tags_set_overwrite_delete(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id, tags={"a": "1"})["run_id"]
    client.set_run_tag(run_id, "a", "2")
    client.set_run_tag(run_id, "b", "🙂" * 8_000)
    client.delete_run_tag(run_id, "a")
    client.delete_run_tag(run_id, "a")  # idempotent
    client.delete_run_tag(run_id, "never")
    assert client.get_run(run_id)["tags"] == {"b": "🙂" * 8_000}
    assert stored_map(database, "run_tags", run_id) == {"b": "🙂" * 8_000}


def test_tag_limit(client: Client, database: Database, exp_id: str) -> None:
    run_id = client.create_run(exp_id, tags={f"k{i}": "v" for i in range(1_000)})["run_id"]
    client.set_run_tag(run_id, "k5", "overwrite is fine")
    err = expect_error(
        grpc.StatusCode.RESOURCE_EXHAUSTED, "TOO_MANY_TAGS", lambda: client.set_run_tag(run_id, "one-more", "x")
    )
    assert err.metadata["run_id"] == run_id
    assert count_rows(database, "run_tags") == 1_000
