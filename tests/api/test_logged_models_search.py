"""SearchLoggedModels (SPEC §6): every filter key, OR/NOT, metric filters, ordering (metrics
included) with keyset pages, views, experiment scope, and rejected searches."""

from __future__ import annotations

import math
from dataclasses import dataclass

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import Client
from mlgenai.v1 import common_pb2, logged_model_service_pb2 as svc
from store.uow import Database
from tests.api.model_support import T0_MS, add_run
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT
RUN = "c" * 32


@dataclass
class Corpus:
    a: str  # experiment of models 1-7 and the deleted model 9
    b: str  # experiment of model 8
    ids: dict[int, str]  # label -> model id
    labels: dict[str, int]  # model id -> label

    def search(self, client: Client, filter: str = "", order_by: tuple[str, ...] = (), **kw: object) -> list[int]:
        experiments = kw.pop("experiments", [self.a])
        found = client.search_logged_models(experiments, filter, order_by, **kw)  # type: ignore[arg-type]
        return [self.labels[m["model_id"]] for m in found]


@pytest.fixture
def corpus(client: Client, database: Database) -> Corpus:
    a = str(client.create_experiment("search-a")["experiment_id"])
    b = str(client.create_experiment("search-b")["experiment_id"])
    dataset = client.create_dataset("eval")["dataset_id"]
    add_run(database, a, RUN)
    specs: list[tuple[int, str, str, dict[str, object]]] = [
        (1, a, "bot", {"model_type": "agent", "params": {"temp": "0.1"}, "tags": {"env": "prod"}}),
        (2, a, "bot", {"model_type": "agent", "params": {"temp": "0.5"}, "tags": {"env": "dev"}}),
        (3, a, "bot", {"model_type": "LLM"}),
        (4, a, "helper", {}),
        (5, a, "helper", {"source_run_id": RUN}),
        (6, a, "other", {}),
        (7, a, "other", {}),
        (8, b, "bot", {}),
        (9, a, "gone", {}),
    ]
    ids = {n: client.create_logged_model(e, name, **kw)["model_id"] for n, e, name, kw in specs}  # type: ignore[arg-type]
    client.finalize_logged_model(ids[1], "READY")
    client.finalize_logged_model(ids[3], "FAILED")
    client.finalize_logged_model(ids[4], "READY")
    client.log_model_metrics(ids[1], {"acc": 0.9}, step=1)
    client.log_model_metrics(ids[1], {"acc": 0.95}, step=2, dataset_id=dataset)  # the latest over datasets
    client.log_model_metrics(ids[1], {"acc": 0.1}, step=0, run_id=RUN)
    client.log_model_metrics(ids[2], {"acc": 0.7})
    client.log_model_metrics(ids[3], {"acc": math.nan})
    client.log_model_metrics(ids[4], {"acc": 0.8, "loss": math.inf})
    client.log_model_metrics(ids[5], {"acc": -math.inf})
    client.log_model_metrics(ids[7], {"acc": 0.8})
    client.log_model_metrics(ids[8], {"acc": 1.0})
    client.delete_logged_model(ids[9])
    with database.engine.begin() as conn:  # fixed, distinct times: model n created at T0 + n s
        for n, model_id in ids.items():
            conn.execute(
                sa.text("UPDATE logged_models SET create_time = :c, update_time = :u WHERE model_id = :id"),
                {"c": T0_MS + n * 1000, "u": T0_MS + (10 - n) * 1000, "id": model_id},
            )
    return Corpus(a, b, ids, {v: k for k, v in ids.items()})


FILTERS = [
    ("", [1, 2, 3, 4, 5, 6, 7]),
    ("name = 'bot'", [1, 2, 3]),
    ("name != 'bot'", [4, 5, 6, 7]),
    ("name LIKE 'h%'", [4, 5]),
    ("name ILIKE 'BO_'", [1, 2, 3]),
    ("name IN ('helper', 'other')", [4, 5, 6, 7]),
    ("model_type = 'agent'", [1, 2]),
    ("model_type IS NULL", [4, 5, 6, 7]),
    ("model_type IS NOT NULL", [1, 2, 3]),
    ("status = 'READY'", [1, 4]),
    ("status = 'ready'", [1, 4]),
    ("status IN ('FAILED', 'PENDING')", [2, 3, 5, 6, 7]),
    ("status != 'PENDING'", [1, 3, 4]),
    (f"source_run_id = '{RUN}'", [5]),
    ("source_run_id IS NULL", [1, 2, 3, 4, 6, 7]),
    ("version = 2", [2, 5, 7]),
    ("version >= 2", [2, 3, 5, 7]),
    ("version IN (1, 3)", [1, 3, 4, 6]),
    (f"create_time >= {T0_MS + 6000}", [6, 7]),
    ("create_time < '2025-06-15T15:06:43Z'", [1, 2]),  # T0 is 15:06:40
    (f"update_time = {T0_MS + 7000}", [3]),
    ("params.temp = '0.1'", [1]),
    ("params.temp IS NOT NULL", [1, 2]),
    ("params.temp IS NULL", [3, 4, 5, 6, 7]),
    ("tags.env = 'prod'", [1]),
    ("tags.env != 'prod'", [2]),
    ("NOT tags.env = 'prod'", [2, 3, 4, 5, 6, 7]),
    ("metrics.acc > 0.75", [1, 4, 7]),
    ("metrics.acc = 0.95", [1]),
    ("metrics.acc = 0.9", []),  # not the latest over datasets
    ("metrics.acc < 0", [5]),
    ("metrics.acc >= 0.8 AND metrics.acc <= 0.8", [4, 7]),
    ("metrics.acc != 0.7", [1, 4, 5, 7]),  # NaN and missing compare false
    ("metrics.acc IN (0.7, 0.8)", [2, 4, 7]),
    ("metrics.acc IS NULL", [6]),
    ("metrics.acc IS NOT NULL", [1, 2, 3, 4, 5, 7]),
    ("metrics.loss > 1e300", [4]),
    ("metrics.`acc` > 0.9", [1]),
    ("name = 'helper' OR metrics.acc >= 0.9", [1, 4, 5]),
    ("NOT name = 'bot'", [4, 5, 6, 7]),
    ("NOT (name = 'bot' OR name = 'helper')", [6, 7]),
    ("(name = 'bot' AND version > 1) OR (status = 'READY' AND NOT model_type IS NOT NULL)", [2, 3, 4]),
]


@pytest.mark.parametrize(("text", "expected"), FILTERS, ids=[f[0] or "none" for f in FILTERS])
def test_filter(client: Client, corpus: Corpus, text: str, expected: list[int]) -> None:
    assert sorted(corpus.search(client, text)) == expected


def test_model_id_filter(client: Client, corpus: Corpus) -> None:
    assert corpus.search(client, f"model_id = '{corpus.ids[2]}'") == [2]
    assert sorted(corpus.search(client, f"model_id IN ('{corpus.ids[3]}', '{corpus.ids[8]}')")) == [3]


def test_models_come_with_params_tags_and_latest_metrics(client: Client, corpus: Corpus) -> None:
    [first] = client.search_logged_models([corpus.a], "version = 1 AND name = 'bot'")
    assert first == client.get_logged_model(corpus.ids[1])
    assert first["params"] == {"temp": "0.1"} and first["tags"] == {"env": "prod"}
    assert [(m["value"], m["step"]) for m in first["metrics"]] == [(0.9, 1), (0.1, 0), (0.95, 2)]


def test_experiments_and_views(client: Client, corpus: Corpus) -> None:
    assert sorted(corpus.search(client, "name = 'bot'", experiments=[corpus.a, corpus.b])) == [1, 2, 3, 8]
    assert corpus.search(client, experiments=[corpus.b]) == [8]
    assert corpus.search(client, experiments=["424242"]) == []
    assert corpus.search(client, view="DELETED_ONLY") == [9]
    assert sorted(corpus.search(client, view="ALL")) == [1, 2, 3, 4, 5, 6, 7, 9]


ORDERS = [
    ((), [7, 6, 5, 4, 3, 2, 1]),  # create_time DESC
    (("create_time",), [1, 2, 3, 4, 5, 6, 7]),
    (("update_time ASC",), [7, 6, 5, 4, 3, 2, 1]),
    (("name ASC", "version DESC"), [3, 2, 1, 5, 4, 7, 6]),
    (("version", "name desc"), [6, 4, 1, 7, 5, 2, 3]),
    # numbers ascending (-inf first), then NaN (3), then no metric (6); 4 and 7 tie: model_id ASC
    (("metrics.acc",), [5, 2, "4|7", 1, 3, 6]),
    # descending: numbers descending, then NaN, then no metric (NaN and missing last either way)
    (("metrics.acc DESC",), [1, "4|7", 2, 5, 3, 6]),
    (("metrics.loss DESC", "name"), [4, "1|2|3", 5, "6|7"]),
    (("metrics.`acc` ASC", "create_time DESC"), [5, 2, 7, 4, 1, 3, 6]),
]


def _expand(corpus: Corpus, expected: list[object]) -> list[int]:
    out: list[int] = []
    for item in expected:
        if isinstance(item, str):  # a tie, broken by model id ascending
            out.extend(sorted((int(n) for n in item.split("|")), key=lambda n: corpus.ids[n]))
        else:
            out.append(int(item))  # type: ignore[call-overload]
    return out


@pytest.mark.parametrize(("order", "expected"), ORDERS, ids=[", ".join(o[0]) or "default" for o in ORDERS])
@pytest.mark.parametrize("page_size", [1, 2, 0])
def test_order_and_pages(
    client: Client, corpus: Corpus, order: tuple[str, ...], expected: list[object], page_size: int
) -> None:
    """Pages of 1 and 2 over 7 models (±inf and NaN at page boundaries): the order of one page."""
    assert corpus.search(client, "", order, page_size=page_size) == _expand(corpus, expected)


def test_pages_with_a_filter_and_metric_order(client: Client, corpus: Corpus) -> None:
    request = svc.SearchLoggedModelsRequest(
        experiment_ids=[corpus.a], filter="metrics.acc IS NOT NULL", order_by=["metrics.acc DESC"], page_size=2
    )
    pages = []
    while True:
        response = client.models.SearchLoggedModels(request)
        pages.append([corpus.labels[m.model_id] for m in response.models])
        if not response.next_page_token:
            break
        request.page_token = response.next_page_token
    assert [len(p) for p in pages] == [2, 2, 2]
    assert [n for page in pages for n in page] == _expand(corpus, [1, "4|7", 2, 5, 3])


def test_paging_while_models_are_created(client: Client, corpus: Corpus) -> None:
    request = svc.SearchLoggedModelsRequest(experiment_ids=[corpus.a], order_by=["metrics.acc"], page_size=3)
    first = client.models.SearchLoggedModels(request)
    for value in (-1.0, 0.75, 2.0):
        new_id = client.create_logged_model(corpus.a, "late")["model_id"]
        client.log_model_metrics(new_id, {"acc": value})
    request.page_token = first.next_page_token
    rest: list[str] = []
    while request.page_token:
        response = client.models.SearchLoggedModels(request)
        rest.extend(m.model_id for m in response.models)
        request.page_token = response.next_page_token
    seen = [m.model_id for m in first.models] + rest
    assert len(seen) == len(set(seen))
    assert {corpus.ids[n] for n in range(1, 8)} <= set(seen)


# -- rejected searches -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "nope = 1",
        "attributes.name = 'bot'",
        "name = ",
        "name = 1",
        "version = 'a'",
        "version = 1.5",
        "status = 'DONE'",
        "status LIKE 'R%'",
        "create_time > 'yesterday'",
        "metrics.acc = 'high'",
        "metrics.acc LIKE '0%'",
        "metrics.acc > TRUE",
        "params.temp > 1",
        "name = 'a' AND (",
    ],
)
def test_bad_filter(client: Client, corpus: Corpus, text: str) -> None:
    expect_error(INVALID, "INVALID_FILTER", lambda: corpus.search(client, text), field="filter")


@pytest.mark.parametrize(
    "order",
    [
        ["nope"],
        ["name UP"],
        ["name ASC DESC"],
        ["name", "name DESC"],
        ["metrics.acc", "metrics.acc DESC"],
        ["metrics.acc sideways"],
        ["metrics."],
        ["metrics.`a b` ASC extra"],
        ["metrics.a\x00b"],
        ["params.temp"],
        ["status"],
    ],
)
def test_bad_order(client: Client, corpus: Corpus, order: list[str]) -> None:
    expect_error(INVALID, "INVALID_ORDER_BY", lambda: corpus.search(client, "", tuple(order)), field="order_by")


def test_bad_page_tokens(client: Client, corpus: Corpus) -> None:
    first = svc.SearchLoggedModelsRequest(
        experiment_ids=[corpus.a], filter="name != 'x'", order_by=["metrics.acc"], page_size=2
    )
    token = client.models.SearchLoggedModels(first).next_page_token
    assert token
    changes: list[dict[str, object]] = [
        {"filter": "name != 'y'"},
        {"order_by": ["metrics.acc DESC"]},
        {"order_by": ["metrics.loss"]},
        {"view": common_pb2.VIEW_TYPE_ALL},
        {"experiment_ids": [corpus.a, corpus.b]},
    ]
    for change in changes:
        request = svc.SearchLoggedModelsRequest()
        request.CopyFrom(first)
        for field, value in change.items():
            request.ClearField(field)  # type: ignore[arg-type]
            if isinstance(value, list):
                getattr(request, field).extend(value)
            else:
                setattr(request, field, value)
        request.page_token = token
        expect_error(INVALID, "INVALID_PAGE_TOKEN", lambda r=request: client.models.SearchLoggedModels(r))  # type: ignore[misc]
    for garbage in ("garbage", token[:-2], token + "A"):
        request = svc.SearchLoggedModelsRequest()
        request.CopyFrom(first)
        request.page_token = garbage
        expect_error(INVALID, "INVALID_PAGE_TOKEN", lambda r=request: client.models.SearchLoggedModels(r))  # type: ignore[misc]


@pytest.mark.parametrize(
    ("experiments", "field"),
    [
        ([], "experiment_ids"),
        (["abc"], "experiment_ids[0]"),
        (["1", "-2"], "experiment_ids[1]"),
        ([str(i) for i in range(101)], "experiment_ids"),
    ],
    ids=["none", "not-a-number", "negative", "101"],
)
def test_bad_experiment_ids(client: Client, experiments: list[str], field: str) -> None:
    expect_error(INVALID, "INVALID_FIELD", lambda: list(client.search_logged_models(experiments)), field=field)


def test_negative_page_size(client: Client) -> None:
    request = svc.SearchLoggedModelsRequest(experiment_ids=["0"], page_size=-1)
    expect_error(INVALID, "INVALID_FIELD", lambda: client.models.SearchLoggedModels(request), field="page_size")
