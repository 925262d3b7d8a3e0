"""LoggedModelService through the real server (SPEC §6): create and versions, get, finalize,
soft delete, params, tags, metrics, idempotency.

Rejected input is in ``test_logged_models_bad_input.py``, search in
``test_logged_models_search.py``, concurrent creators in ``test_logged_models_concurrency.py``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
import uuid

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import Client
from store.uow import Database
from tests.api.model_support import T0_MS, add_run, nothing_stored
from tests.helpers import count_rows, expect_error

FAILED_PRECONDITION = grpc.StatusCode.FAILED_PRECONDITION
NOT_FOUND = grpc.StatusCode.NOT_FOUND
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def ms(value: dt.datetime) -> int:
    return (value - EPOCH) // dt.timedelta(milliseconds=1)


def at(offset_ms: int) -> dt.datetime:
    return EPOCH + dt.timedelta(milliseconds=T0_MS + offset_ms)


@pytest.fixture
def exp(client: Client) -> str:
    return str(client.create_experiment("models")["experiment_id"])


def set_update_time(db: Database, model_id: str, value: int) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE logged_models SET update_time = :t WHERE model_id = :id"), {"t": value, "id": model_id}
        )


# -- create and get ----------------------------------------------------------------------------


def test_create_returns_a_pending_model(client: Client, exp: str, database: Database) -> None:
    run_id = add_run(database, exp)
    before = time.time_ns() // 1_000_000
    model = client.create_logged_model(
        exp, "support-bot", model_type="agent", source_run_id=run_id, params={"temp": "0.2"}, tags={"env": "dev"}
    )
    assert re.fullmatch(r"m-[0-9a-f]{32}", model["model_id"])
    assert model["experiment_id"] == exp and model["name"] == "support-bot" and model["version"] == 1
    assert (model["model_type"], model["source_run_id"]) == ("agent", run_id)
    assert (model["status"], model["status_message"], model["lifecycle_stage"]) == ("PENDING", "", "ACTIVE")
    assert (model["params"], model["tags"], model["metrics"]) == ({"temp": "0.2"}, {"env": "dev"}, [])
    assert model["create_time"] == model["update_time"] and ms(model["create_time"]) >= before
    assert client.get_logged_model(model["model_id"]) == model


def test_create_without_optional_fields(client: Client, exp: str) -> None:
    model = client.create_logged_model(exp, "bare")
    assert (model["model_type"], model["source_run_id"], model["params"], model["tags"]) == ("", "", {}, {})
    assert client.get_logged_model(model["model_id"]) == model


def test_create_without_a_name_picks_one(client: Client, exp: str) -> None:
    model = client.create_logged_model(exp)
    assert re.fullmatch(r"[a-z]+-[a-z]+-[0-9]{1,3}", model["name"]) and model["version"] == 1


def test_versions_count_per_experiment_and_name(client: Client, exp: str) -> None:
    other = str(client.create_experiment("other")["experiment_id"])
    made = [client.create_logged_model(e, n) for e, n in [(exp, "a"), (exp, "a"), (exp, "b"), (other, "a"), (exp, "a")]]
    assert [m["version"] for m in made] == [1, 2, 1, 1, 3]
    assert len({m["model_id"] for m in made}) == 5


def test_names_are_case_sensitive_versions(client: Client, exp: str) -> None:
    assert [client.create_logged_model(exp, n)["version"] for n in ("Bot", "bot", "Bot")] == [1, 1, 2]


def test_failed_creation_leaves_no_version_gap(client: Client, exp: str, database: Database) -> None:
    client.create_logged_model(exp, "gapless")
    with nothing_stored(database):
        expect_error(
            NOT_FOUND, "RUN_NOT_FOUND", lambda: client.create_logged_model(exp, "gapless", source_run_id="f" * 32)
        )
    assert client.create_logged_model(exp, "gapless")["version"] == 2


def test_create_in_unknown_or_deleted_experiment(client: Client, exp: str, database: Database) -> None:
    with nothing_stored(database):
        expect_error(NOT_FOUND, "EXPERIMENT_NOT_FOUND", lambda: client.create_logged_model("987654", "m"))
    client.delete_experiment(exp)
    with nothing_stored(database):
        expect_error(FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: client.create_logged_model(exp, "m"))


def test_get_unknown_model(client: Client) -> None:
    err = expect_error(NOT_FOUND, "LOGGED_MODEL_NOT_FOUND", lambda: client.get_logged_model("m-" + "0" * 32))
    assert err.metadata.get("model_id") == "m-" + "0" * 32


def test_request_id_makes_create_idempotent(client: Client, exp: str, database: Database) -> None:
    rid = str(uuid.uuid4())
    first = client.create_logged_model(exp, "idem", params={"p": "1"}, request_id=rid)
    again = client.create_logged_model(exp, "idem", params={"p": "1"}, request_id=rid)
    assert again == first
    assert count_rows(database, "logged_models") == 1
    assert client.create_logged_model(exp, "idem")["version"] == 2  # the repeat used no number
    with nothing_stored(database):
        expect_error(
            grpc.StatusCode.INVALID_ARGUMENT,
            "REQUEST_ID_REUSED",
            lambda: client.create_logged_model(exp, "idem", params={"p": "2"}, request_id=rid),
        )


# -- finalize and delete ---------------------------------------------------------------------


@pytest.mark.parametrize("status", ["READY", "FAILED"])
def test_finalize_pending(client: Client, exp: str, database: Database, status: str) -> None:
    model = client.create_logged_model(exp, "f")
    set_update_time(database, model["model_id"], 1_000)
    done = client.finalize_logged_model(model["model_id"], status, "built")
    assert (done["status"], done["status_message"]) == (status, "built")
    assert ms(done["update_time"]) > 1_000
    assert client.get_logged_model(model["model_id"]) == done


def test_finalize_again_with_the_same_status_updates_the_message(client: Client, exp: str) -> None:
    model_id = client.create_logged_model(exp, "f")["model_id"]
    client.finalize_logged_model(model_id, "FAILED", "first")
    again = client.finalize_logged_model(model_id, "FAILED", "second")
    assert (again["status"], again["status_message"]) == ("FAILED", "second")


@pytest.mark.parametrize(("first", "then"), [("READY", "FAILED"), ("FAILED", "READY")])
def test_finalized_status_cannot_change(client: Client, exp: str, database: Database, first: str, then: str) -> None:
    model_id = client.create_logged_model(exp, "f")["model_id"]
    client.finalize_logged_model(model_id, first, "m")
    with nothing_stored(database):
        err = expect_error(
            FAILED_PRECONDITION, "LOGGED_MODEL_ALREADY_FINALIZED", lambda: client.finalize_logged_model(model_id, then)
        )
    assert err.metadata.get("model_id") == model_id
    assert client.get_logged_model(model_id)["status"] == first


def test_delete_is_soft_and_idempotent(client: Client, exp: str, database: Database) -> None:
    model = client.create_logged_model(exp, "d", tags={"a": "1"})
    deleted = client.delete_logged_model(model["model_id"])
    assert deleted["lifecycle_stage"] == "DELETED" and deleted["tags"] == {"a": "1"}
    with nothing_stored(database):
        assert client.delete_logged_model(model["model_id"]) == deleted
    assert client.get_logged_model(model["model_id"]) == deleted
    expect_error(NOT_FOUND, "LOGGED_MODEL_NOT_FOUND", lambda: client.delete_logged_model("m-" + "1" * 32))


def test_nothing_can_be_written_into_a_deleted_model(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "d", tags={"a": "1"})["model_id"]
    client.delete_logged_model(model_id)
    writes = [
        lambda: client.finalize_logged_model(model_id, "READY"),
        lambda: client.set_logged_model_tags(model_id, {"b": "2"}),
        lambda: client.delete_logged_model_tag(model_id, "a"),
        lambda: client.log_model_params(model_id, {"p": "1"}),
        lambda: client.log_model_metrics(model_id, {"acc": 0.5}),
    ]
    with nothing_stored(database):
        for write in writes:
            expect_error(FAILED_PRECONDITION, "LOGGED_MODEL_DELETED", write)


def test_nothing_can_be_written_into_a_model_of_a_deleted_experiment(
    client: Client, exp: str, database: Database
) -> None:
    model_id = client.create_logged_model(exp, "d")["model_id"]
    client.delete_experiment(exp)
    with nothing_stored(database):
        expect_error(FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: client.log_model_params(model_id, {"p": "1"}))
        expect_error(FAILED_PRECONDITION, "EXPERIMENT_DELETED", lambda: client.finalize_logged_model(model_id))
    assert client.get_logged_model(model_id)["lifecycle_stage"] == "ACTIVE"  # reads still work


@pytest.mark.parametrize("call", ["finalize", "tags", "delete_tag", "params", "metrics"])
def test_writes_into_unknown_model(client: Client, database: Database, call: str) -> None:
    unknown = "m-" + "2" * 32
    writes = {
        "finalize": lambda: client.finalize_logged_model(unknown, "READY"),
        "tags": lambda: client.set_logged_model_tags(unknown, {"b": "2"}),
        "delete_tag": lambda: client.delete_logged_model_tag(unknown, "a"),
        "params": lambda: client.log_model_params(unknown, {"p": "1"}),
        "metrics": lambda: client.log_model_metrics(unknown, {"acc": 0.5}),
    }
    with nothing_stored(database):
        expect_error(NOT_FOUND, "LOGGED_MODEL_NOT_FOUND", writes[call])


# -- params and tags -----------------------------------------------------------------------


def test_params_are_write_once(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "p", params={"a": "1"})["model_id"]
    set_update_time(database, model_id, 1_000)
    same = client.log_model_params(model_id, {"a": "1"})
    assert same["params"] == {"a": "1"} and ms(same["update_time"]) == 1_000  # a no-op
    more = client.log_model_params(model_id, {"a": "1", "b": "2"})
    assert more["params"] == {"a": "1", "b": "2"} and ms(more["update_time"]) > 1_000
    with nothing_stored(database):
        err = expect_error(
            FAILED_PRECONDITION, "PARAM_ALREADY_SET", lambda: client.log_model_params(model_id, {"c": "3", "a": "x"})
        )
    assert err.metadata.get("key") == "a"
    assert client.get_logged_model(model_id)["params"] == {"a": "1", "b": "2"}


def test_tags_are_set_overwritten_and_deleted(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "t", tags={"a": "1"})["model_id"]
    set_update_time(database, model_id, 1_000)
    model = client.set_logged_model_tags(model_id, {"a": "2", "b": "x" * 8_000})
    assert model["tags"] == {"a": "2", "b": "x" * 8_000} and ms(model["update_time"]) > 1_000
    assert client.delete_logged_model_tag(model_id, "a")["tags"] == {"b": "x" * 8_000}
    with nothing_stored(database):
        assert client.delete_logged_model_tag(model_id, "a")["tags"] == {"b": "x" * 8_000}  # idempotent


def test_at_most_1000_tags(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "t", tags={f"k{i}": "v" for i in range(999)})["model_id"]
    assert len(client.set_logged_model_tags(model_id, {"k0": "changed", "last": "v"})["tags"]) == 1_000
    with nothing_stored(database):
        expect_error(
            grpc.StatusCode.RESOURCE_EXHAUSTED,
            "TOO_MANY_TAGS",
            lambda: client.set_logged_model_tags(model_id, {"x": "1"}),
        )


# -- metrics ---------------------------------------------------------------------------------


def test_metrics_keep_history_and_the_latest_point(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "m")["model_id"]
    client.log_model_metrics(model_id, [{"name": "acc", "value": 0.5, "step": 1, "time": T0_MS}])
    client.log_model_metrics(model_id, [{"name": "acc", "value": 0.4, "step": 0, "time": T0_MS + 9}])  # older step
    client.log_model_metrics(model_id, [{"name": "acc", "value": 0.6, "step": 1, "time": T0_MS - 1}])  # older time
    [acc] = client.get_logged_model(model_id)["metrics"]
    assert (acc["value"], acc["step"], acc["time"]) == (0.5, 1, at(0))
    client.log_model_metrics(model_id, [{"name": "acc", "value": 0.7, "step": 1, "time": T0_MS}])  # same: replaces
    client.log_model_metrics(
        model_id,
        [
            {"name": "acc", "value": 0.9, "step": 2, "time": T0_MS},
            {"name": "acc", "value": 0.8, "step": 2, "time": T0_MS},
        ],
    )  # equal points in one call: the last wins
    [acc] = client.get_logged_model(model_id)["metrics"]
    assert (acc["value"], acc["step"]) == (0.8, 2)
    assert count_rows(database, "logged_model_metrics") == 6


def test_metrics_per_dataset_and_run_are_ordered(client: Client, exp: str, database: Database) -> None:
    d1 = client.create_dataset("eval-a")["dataset_id"]
    r1, r2 = add_run(database, exp, "b" * 32), add_run(database, exp, "a" * 32)
    model_id = client.create_logged_model(exp, "m")["model_id"]
    client.log_model_metrics(model_id, {"z": 1.0, "acc": 0.5}, step=3)
    client.log_model_metrics(model_id, {"acc": 0.7}, dataset_id=d1, dataset_digest="abc", run_id=r1)
    client.log_model_metrics(model_id, {"acc": 0.6}, run_id=r2)
    metrics = client.get_logged_model(model_id)["metrics"]
    keys = [(m["name"], m["dataset_id"], m["run_id"]) for m in metrics]
    assert keys == [("acc", "", ""), ("acc", "", r2), ("acc", d1, r1), ("z", "", "")]
    assert [m["value"] for m in metrics] == [0.5, 0.6, 0.7, 1.0]
    assert metrics[2]["dataset_digest"] == "abc" and metrics[0]["step"] == 3


def test_metric_time_defaults_to_the_server_clock(client: Client, exp: str) -> None:
    model_id = client.create_logged_model(exp, "m")["model_id"]
    before = time.time_ns() // 1_000_000
    client.log_model_metrics(model_id, {"acc": 1.0})
    after = time.time_ns() // 1_000_000
    [acc] = client.get_logged_model(model_id)["metrics"]
    assert before <= ms(acc["time"]) <= after


def test_non_finite_values_round_trip(client: Client, exp: str) -> None:
    model_id = client.create_logged_model(exp, "m")["model_id"]
    client.log_model_metrics(model_id, {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "big": 1e308})
    values = {m["name"]: m["value"] for m in client.get_logged_model(model_id)["metrics"]}
    assert math.isnan(values["nan"]) and values["inf"] == math.inf and values["ninf"] == -math.inf
    assert values["big"] == 1e308


def test_metrics_are_all_or_nothing(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "m")["model_id"]
    dataset_id = client.create_dataset("known")["dataset_id"]
    unknown_dataset, unknown_run = "d-" + "0" * 32, "0" * 32
    with nothing_stored(database):
        err = expect_error(
            NOT_FOUND,
            "DATASET_NOT_FOUND",
            lambda: client.log_model_metrics(
                model_id,
                [
                    {"name": "a", "value": 1.0, "dataset_id": dataset_id},
                    {"name": "b", "value": 1.0, "dataset_id": unknown_dataset},
                ],
            ),
        )
        assert err.metadata.get("dataset_id") == unknown_dataset
        expect_error(
            NOT_FOUND,
            "RUN_NOT_FOUND",
            lambda: client.log_model_metrics(
                model_id, [{"name": "a", "value": 1.0}, {"name": "b", "value": 1.0, "run_id": unknown_run}]
            ),
        )


def test_metrics_bump_update_time(client: Client, exp: str, database: Database) -> None:
    model_id = client.create_logged_model(exp, "m")["model_id"]
    set_update_time(database, model_id, 1_000)
    client.log_model_metrics(model_id, {"acc": 1.0})
    assert ms(client.get_logged_model(model_id)["update_time"]) > 1_000
