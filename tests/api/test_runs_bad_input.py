"""Rejected EvaluationRunService input: the code, the reason, the field, and nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2, timestamp_pb2

from mlgenai.client import Client
from mlgenai.v1 import evaluation_run_pb2 as rpb, evaluation_run_service_pb2 as pb
from store.uow import Database
from tests.api.run_support import RUN_TABLES, at, logged_model, ms
from tests.helpers import expect_nothing_written

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
TABLES = (*RUN_TABLES, "request_ids")
MALFORMED_RUN_IDS = ["", "ABCDEF" + "0" * 26, "0" * 31, "0" * 33, "g" * 32, "m-" + "0" * 32]


@pytest.fixture
def exp_id(client: Client) -> str:
    return str(client.create_experiment("evals")["experiment_id"])


@pytest.fixture
def run_id(client: Client, exp_id: str) -> str:
    return str(client.create_run(exp_id, "r", params={"p": "1"}, tags={"t": "1"})["run_id"])


def rejected(
    database: Database, code: grpc.StatusCode, reason: str, call: Callable[[], Any], field: str | None = None
) -> Any:
    return expect_nothing_written(database, TABLES, code, reason, call, field)


# -- CreateRun -------------------------------------------------------------------------------


def create(client: Client, **fields: Any) -> Callable[[], Any]:
    return lambda: client.runs.CreateRun(pb.CreateRunRequest(**fields))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"experiment_id": ""}, "experiment_id"),
        ({"experiment_id": "abc"}, "experiment_id"),
        ({"experiment_id": "9" * 20}, "experiment_id"),
        ({"name": "n" * 257}, "name"),
        ({"name": "   "}, "name"),
        ({"name": "a\x00b"}, "name"),
        ({"dataset": rpb.RunDataset(dataset_id="d-123")}, "dataset.dataset_id"),
        ({"dataset": rpb.RunDataset()}, "dataset.dataset_id"),
        ({"dataset": rpb.RunDataset(dataset_id="d-" + "0" * 32, dataset_version=-1)}, "dataset.dataset_version"),
        ({"model_id": "m-xyz"}, "model_id"),
        ({"model_id": "0" * 32}, "model_id"),
        ({"params": {"": "v"}}, "params[]"),
        ({"params": {"k" * 251: "v"}}, f"params[{'k' * 50}]"),
        ({"params": {"k": "v" * 8_001}}, "params[k]"),
        ({"params": {"k": "a\x00"}}, "params[k]"),
        ({"params": {f"k{i}": "v" for i in range(1_001)}}, "params"),
        ({"tags": {"": "v"}}, "tags[]"),
        ({"tags": {"k" * 251: "v"}}, f"tags[{'k' * 50}]"),
        ({"tags": {"k": "v" * 8_001}}, "tags[k]"),
        ({"tags": {f"k{i}": "v" for i in range(1_001)}}, "tags"),
        ({"request_id": "not-a-uuid"}, "request_id"),
    ],
)
def test_create_invalid_fields(
    client: Client, database: Database, exp_id: str, fields: dict[str, Any], field: str
) -> None:
    rejected(database, INVALID, "INVALID_FIELD", create(client, **({"experiment_id": exp_id} | fields)), field)


def test_create_in_unknown_or_deleted_experiment(client: Client, database: Database, exp_id: str) -> None:
    rejected(database, NF, "EXPERIMENT_NOT_FOUND", lambda: client.create_run("123456"))
    client.delete_experiment(exp_id)
    rejected(database, grpc.StatusCode.FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: client.create_run(exp_id))


def test_create_with_unknown_dataset_version_or_model(client: Client, database: Database, exp_id: str) -> None:
    missing_ds = "d-" + "0" * 32
    err = rejected(database, NF, "DATASET_NOT_FOUND", lambda: client.create_run(exp_id, dataset_id=missing_ds))
    assert err.metadata["dataset_id"] == missing_ds
    ds = client.create_dataset("golden", experiment_ids=[exp_id])
    client.merge_records(ds["dataset_id"], [{"inputs": {"q": 1}}])
    err = rejected(
        database,
        NF,
        "DATASET_VERSION_NOT_FOUND",
        lambda: client.create_run(exp_id, dataset_id=ds["dataset_id"], dataset_version=2),
    )
    assert err.metadata["current_version"] == "1"
    missing_model = "m-" + "0" * 32
    rejected(database, NF, "LOGGED_MODEL_NOT_FOUND", lambda: client.create_run(exp_id, model_id=missing_model))
    # The experiment check comes first; the dataset check before the model check.
    rejected(database, NF, "EXPERIMENT_NOT_FOUND", lambda: client.create_run("424242", dataset_id=missing_ds))
    model_id = logged_model(database, exp_id)
    rejected(
        database,
        NF,
        "DATASET_NOT_FOUND",
        lambda: client.create_run(exp_id, dataset_id=missing_ds, model_id=model_id),
    )


# -- run ids ---------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", MALFORMED_RUN_IDS)
def test_malformed_run_ids(client: Client, database: Database, bad: str) -> None:
    calls: list[tuple[str, Callable[[], Any]]] = [
        ("run_id", lambda: client.get_run(bad)),
        ("run_id", lambda: client.delete_run(bad)),
        ("run_id", lambda: client.undelete_run(bad)),
        ("run.run_id", lambda: client.update_run(bad, name="x")),
        ("run_id", lambda: client.log_params(bad, {"a": "b"})),
        ("run_id", lambda: client.log_metrics(bad, {"a": 1.0})),
        ("run_id", lambda: client.set_run_tag(bad, "a", "b")),
        ("run_id", lambda: client.delete_run_tag(bad, "a")),
    ]
    for field, call in calls:
        rejected(database, INVALID, "INVALID_FIELD", call, field)


# -- UpdateRun -------------------------------------------------------------------------------


def update(client: Client, run: rpb.EvaluationRun, *paths: str) -> Callable[[], Any]:
    return lambda: client.runs.UpdateRun(
        pb.UpdateRunRequest(run=run, update_mask=field_mask_pb2.FieldMask(paths=list(paths)))
    )


@pytest.mark.parametrize("path", ["experiment_id", "start_time", "params", "tags", "dataset", "model_id", "nope"])
def test_update_immutable_paths(client: Client, database: Database, run_id: str, path: str) -> None:
    run = rpb.EvaluationRun(run_id=run_id, name="x")
    rejected(database, INVALID, "INVALID_FIELD", update(client, run, "name", path), "update_mask")


def test_update_bad_values(client: Client, database: Database, run_id: str) -> None:
    run = client.get_run(run_id)
    cases: list[tuple[rpb.EvaluationRun, str, str]] = [
        (rpb.EvaluationRun(run_id=run_id, name=""), "name", "run.name"),
        (rpb.EvaluationRun(run_id=run_id, name="n" * 257), "name", "run.name"),
        (rpb.EvaluationRun(run_id=run_id), "status", "run.status"),
        (rpb.EvaluationRun(run_id=run_id, status=9), "status", "run.status"),  # type: ignore[arg-type]
        (rpb.EvaluationRun(run_id=run_id), "end_time", "run.end_time"),
    ]
    for message, path, field in cases:
        rejected(database, INVALID, "INVALID_FIELD", update(client, message, path), field)
    before_start = timestamp_pb2.Timestamp()
    before_start.FromMilliseconds(ms(run["start_time"]) - 1)
    early = rpb.EvaluationRun(run_id=run_id, end_time=before_start, status=rpb.RUN_STATUS_FINISHED)
    rejected(database, INVALID, "INVALID_FIELD", update(client, early, "end_time", "status"), "run.end_time")


def test_update_unknown_run(client: Client, database: Database) -> None:
    rejected(database, NF, "RUN_NOT_FOUND", lambda: client.update_run("e" * 32, name="x", end_time=at(0)))


# -- LogParams, LogMetrics, tags -------------------------------------------------------------


def test_log_params_bad_input(client: Client, database: Database, run_id: str) -> None:
    for params, field in [
        ({}, "params"),
        ({f"k{i}": "v" for i in range(1_001)}, "params"),
        ({"": "v"}, "params[]"),
        ({"k" * 251: "v"}, f"params[{'k' * 50}]"),
        ({"ok": "v", "k": "v" * 8_001}, "params[k]"),
    ]:
        rejected(database, INVALID, "INVALID_FIELD", lambda p=params: client.log_params(run_id, p), field)  # type: ignore[misc]
    rejected(database, NF, "RUN_NOT_FOUND", lambda: client.log_params("f" * 32, {"a": "b"}))


def test_log_params_conflict_writes_nothing(client: Client, database: Database, run_id: str) -> None:
    call = lambda: client.log_params(run_id, {"new": "x", "p": "2"})  # noqa: E731
    err = rejected(database, grpc.StatusCode.FAILED_PRECONDITION, "PARAM_ALREADY_SET", call)
    assert err.metadata["run_id"] == run_id


def test_log_metrics_bad_input(client: Client, database: Database, run_id: str) -> None:
    def log(metrics: list[rpb.RunMetric]) -> Callable[[], Any]:
        return lambda: client.runs.LogMetrics(pb.LogMetricsRequest(run_id=run_id, metrics=metrics))

    cases = [
        ([], "metrics"),
        ([rpb.RunMetric(name=f"m{i}", value=1) for i in range(1_001)], "metrics"),
        ([rpb.RunMetric(name="ok", value=1), rpb.RunMetric(value=1)], "metrics[1].name"),
        ([rpb.RunMetric(name="m" * 251, value=1)], "metrics[0].name"),
        ([rpb.RunMetric(name="a\x00", value=1)], "metrics[0].name"),
    ]
    for metrics, field in cases:
        rejected(database, INVALID, "INVALID_FIELD", log(metrics), field)
    rejected(database, NF, "RUN_NOT_FOUND", lambda: client.log_metrics("f" * 32, {"a": 1.0}))


def test_tag_bad_input(client: Client, database: Database, run_id: str) -> None:
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.set_run_tag(run_id, "", "v"), "key")
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.set_run_tag(run_id, "k" * 251, "v"), "key")
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.set_run_tag(run_id, "k", "v" * 8_001), "value")
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.delete_run_tag(run_id, ""), "key")
    rejected(database, NF, "RUN_NOT_FOUND", lambda: client.set_run_tag("f" * 32, "k", "v"))
    rejected(database, NF, "RUN_NOT_FOUND", lambda: client.delete_run_tag("f" * 32, "k"))
