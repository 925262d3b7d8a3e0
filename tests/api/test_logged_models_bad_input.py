"""LoggedModelService rejects bad writes and reads: the status, the reason, the field, and
nothing stored (every logged model table is compared before and after each call).

Rejected searches are in ``test_logged_models_search.py``; rejections that need the
database (unknown ids, wrong states) in ``test_logged_models.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from mlgenai.client import Client, MlgenaiError
from mlgenai.v1 import logged_model_pb2 as mpb, logged_model_service_pb2 as svc
from store.uow import Database
from tests.api.model_support import nothing_stored
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
BAD_MODEL_IDS = [
    "",
    "m-",
    "m-" + "0" * 31,
    "m-" + "0" * 33,
    "m-" + "A" * 32,
    "M-" + "0" * 32,
    "x" + "0" * 33,
    "m-" + "g" * 32,
]


@pytest.fixture
def exp(client: Client) -> str:
    return str(client.create_experiment("models")["experiment_id"])


@pytest.fixture
def model_id(client: Client, exp: str) -> str:
    return str(client.create_logged_model(exp, "target", params={"p": "1"}, tags={"t": "1"})["model_id"])


def invalid(db: Database, call: Callable[[], Any], field: str | None, reason: str = "INVALID_FIELD") -> MlgenaiError:
    with nothing_stored(db):
        return expect_error(INVALID, reason, call, field=field)


# -- CreateLoggedModel -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["x" * 257, "a/b", "a:b", "a.b", "a%b", 'a"b', "a'b", " ", "a\x00b"],
    ids=["257-chars", "slash", "colon", "dot", "percent", "dquote", "squote", "blank", "nul"],
)
def test_create_rejects_bad_name(client: Client, database: Database, exp: str, name: str) -> None:
    invalid(database, lambda: client.create_logged_model(exp, name), "name")


def test_create_accepts_a_256_char_name(client: Client, exp: str) -> None:
    assert client.create_logged_model(exp, "🙂" * 256)["name"] == "🙂" * 256


@pytest.mark.parametrize("experiment_id", ["", "abc", "-1", "1.5", "99999999999999999999"])
def test_create_rejects_bad_experiment_id(client: Client, database: Database, experiment_id: str) -> None:
    invalid(database, lambda: client.create_logged_model(experiment_id, "m"), "experiment_id")


def test_create_rejects_long_model_type(client: Client, database: Database, exp: str) -> None:
    invalid(database, lambda: client.create_logged_model(exp, "m", model_type="t" * 257), "model_type")


@pytest.mark.parametrize("run_id", ["abc", "A" * 32, "0" * 31, "0" * 33, "tr-" + "0" * 32])
def test_create_rejects_malformed_source_run_id(client: Client, database: Database, exp: str, run_id: str) -> None:
    invalid(database, lambda: client.create_logged_model(exp, "m", source_run_id=run_id), "source_run_id")


@pytest.mark.parametrize(
    "params",
    [{"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8_001}, {"a\x00": "v"}, {"k": "\x00"}],
    ids=["empty-key", "251-char-key", "8001-char-value", "nul-key", "nul-value"],
)
def test_create_rejects_bad_param(client: Client, database: Database, exp: str, params: dict[str, str]) -> None:
    err = invalid(database, lambda: client.create_logged_model(exp, "m", params={"ok": "1", **params}), None)
    assert err.violations and all(v.field.startswith("params[") for v in err.violations)


@pytest.mark.parametrize(
    "tags",
    [{"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8_001}, {f"k{i}": "v" for i in range(1_001)}],
    ids=["empty-key", "251-char-key", "8001-char-value", "1001-tags"],
)
def test_create_rejects_bad_tags(client: Client, database: Database, exp: str, tags: dict[str, str]) -> None:
    err = invalid(database, lambda: client.create_logged_model(exp, "m", tags=tags), None)
    assert err.violations and all(v.field.startswith("tags") for v in err.violations)


def test_create_rejects_1001_params(client: Client, database: Database, exp: str) -> None:
    invalid(
        database, lambda: client.create_logged_model(exp, "m", params={f"k{i}": "v" for i in range(1_001)}), "params"
    )


def test_create_rejects_a_request_id_that_is_not_a_uuid(client: Client, database: Database, exp: str) -> None:
    invalid(database, lambda: client.create_logged_model(exp, "m", request_id="not-a-uuid"), "request_id")


def test_create_reports_every_violation(client: Client, database: Database, exp: str) -> None:
    err = invalid(
        database, lambda: client.create_logged_model(exp, "a.b", model_type="t" * 300, source_run_id="x"), "name"
    )
    assert {v.field for v in err.violations} == {"name", "model_type", "source_run_id"}


# -- model ids -------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", BAD_MODEL_IDS)
@pytest.mark.parametrize("call", ["get", "finalize", "delete", "tags", "delete_tag", "params", "metrics"])
def test_malformed_model_ids(client: Client, database: Database, call: str, bad: str) -> None:
    calls: dict[str, Callable[[], Any]] = {
        "get": lambda: client.get_logged_model(bad),
        "finalize": lambda: client.finalize_logged_model(bad),
        "delete": lambda: client.delete_logged_model(bad),
        "tags": lambda: client.set_logged_model_tags(bad, {"a": "1"}),
        "delete_tag": lambda: client.delete_logged_model_tag(bad, "a"),
        "params": lambda: client.log_model_params(bad, {"a": "1"}),
        "metrics": lambda: client.log_model_metrics(bad, {"a": 1.0}),
    }
    invalid(database, calls[call], "model_id")


# -- FinalizeLoggedModel -----------------------------------------------------------------------


@pytest.mark.parametrize("status", [mpb.LOGGED_MODEL_STATUS_UNSPECIFIED, mpb.LOGGED_MODEL_STATUS_PENDING, 7])
def test_finalize_rejects_status(client: Client, database: Database, model_id: str, status: int) -> None:
    request = svc.FinalizeLoggedModelRequest(model_id=model_id, status=status)  # type: ignore[arg-type]
    invalid(database, lambda: client.models.FinalizeLoggedModel(request), "status")


def test_finalize_rejects_long_message(client: Client, database: Database, model_id: str) -> None:
    invalid(database, lambda: client.finalize_logged_model(model_id, "READY", "m" * 1_001), "status_message")


# -- tags and params ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "tags", [{}, {"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8_001}], ids=["none", "empty-key", "long-key", "long-value"]
)
def test_set_tags_rejects(client: Client, database: Database, model_id: str, tags: dict[str, str]) -> None:
    err = invalid(database, lambda: client.set_logged_model_tags(model_id, tags), None)
    assert err.violations and all(v.field.startswith("tags") for v in err.violations)


@pytest.mark.parametrize("key", ["", "k" * 251, "\x00"])
def test_delete_tag_rejects_key(client: Client, database: Database, model_id: str, key: str) -> None:
    invalid(database, lambda: client.delete_logged_model_tag(model_id, key), "key")


@pytest.mark.parametrize(
    "params",
    [{}, {"": "v"}, {"k" * 251: "v"}, {"k": "v" * 8_001}, {f"k{i}": "v" for i in range(1_001)}],
    ids=["none", "empty-key", "long-key", "long-value", "1001"],
)
def test_log_params_rejects(client: Client, database: Database, model_id: str, params: dict[str, str]) -> None:
    err = invalid(database, lambda: client.log_model_params(model_id, params), None)
    assert err.violations and all(v.field.startswith("params") for v in err.violations)


# -- metrics ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("point", "field"),
    [
        ({"name": ""}, "metrics[1].name"),
        ({"name": "n" * 251}, "metrics[1].name"),
        ({"name": "a\x00"}, "metrics[1].name"),
        ({"dataset_id": "d-123"}, "metrics[1].dataset_id"),
        ({"dataset_id": "d-" + "A" * 32}, "metrics[1].dataset_id"),
        ({"dataset_digest": "x" * 65}, "metrics[1].dataset_digest"),
        ({"run_id": "r" * 32}, "metrics[1].run_id"),
        ({"run_id": "0" * 31}, "metrics[1].run_id"),
        ({"time": -1}, "metrics[1].time"),
    ],
    ids=[
        "empty-name",
        "long-name",
        "nul-name",
        "short-dataset",
        "upper-dataset",
        "long-digest",
        "bad-run",
        "short-run",
        "before-1970",
    ],
)
def test_log_metrics_rejects(
    client: Client, database: Database, model_id: str, point: dict[str, Any], field: str
) -> None:
    points = [{"name": "ok", "value": 1.0}, {"name": "x", "value": 1.0, **point}]
    invalid(database, lambda: client.log_model_metrics(model_id, points), field)


@pytest.mark.parametrize("count", [0, 1_001])
def test_log_metrics_rejects_count(client: Client, database: Database, model_id: str, count: int) -> None:
    points = [{"name": f"m{i}", "value": 1.0} for i in range(count)]
    invalid(database, lambda: client.log_model_metrics(model_id, points), "metrics")


def test_log_metrics_accepts_1000(client: Client, database: Database, model_id: str) -> None:
    client.log_model_metrics(model_id, [{"name": f"m{i:04}", "value": float(i)} for i in range(1_000)])
    assert len(client.get_logged_model(model_id)["metrics"]) == 1_000
