"""SearchRuns: every filter key, boolean logic, views, ordering (metrics and end_time with
missing values), keyset paging and rejected searches (SPEC §1.5, §1.6, §7)."""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import Client
from mlgenai.v1 import common_pb2, evaluation_run_service_pb2 as pb
from store.uow import Database
from tests.api.run_support import dataset_with_versions, logged_model
from tests.helpers import expect_error

BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@dataclass
class R:
    """What a seeded run is, for computing expected answers."""

    key: str
    run_id: str = ""
    name: str = ""
    status: str = "RUNNING"
    start: int = 0
    end: int | None = None
    model: str | None = None
    dataset: str | None = None
    version: int | None = None
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    deleted: bool = False
    exp: str = "a"


@dataclass
class World:
    client: Client
    exp: dict[str, str]
    runs: dict[str, R]

    def ids(self, pred: Callable[[R], bool], view: str = "active") -> set[str]:
        views: dict[str, Callable[[R], bool]] = {
            "active": lambda r: not r.deleted,
            "deleted": lambda r: r.deleted,
            "all": lambda r: True,
        }
        return {r.run_id for r in self.runs.values() if r.exp == "a" and views[view](r) and pred(r)}

    def search(self, filter: str = "", view: str = "ACTIVE_ONLY") -> set[str]:
        found = [r["run_id"] for r in self.client.search_runs([self.exp["a"]], filter, view=view)]
        assert len(found) == len(set(found)), f"duplicates in {found}"
        return set(found)


def set_times(db: Database, run_id: str, start: int, end: int | None) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE runs SET start_time = :s, end_time = :e WHERE run_id = :id"),
            {"s": start, "e": end, "id": run_id},
        )


@pytest.fixture
def world(client: Client, database: Database) -> World:
    exp = {k: str(client.create_experiment(f"exp-{k}")["experiment_id"]) for k in ("a", "b")}
    dataset_id, _ = dataset_with_versions(client, exp["a"], 2)
    model = logged_model(database, exp["a"])
    runs = [
        R("r0", name="alpha", status="FINISHED", start=BASE, end=BASE + 500, model=model, params={"lr": "0.1"},
          tags={"env": "prod"}, metrics={"acc": 0.9, "loss": 1.0}),
        R("r1", name="beta", status="FAILED", start=BASE + 1000, end=BASE + 9000, dataset=dataset_id, version=2,
          params={"lr": "0.2"}, tags={"env": "dev"}, metrics={"acc": 0.5}),
        R("r2", name="gamma", start=BASE + 1000, dataset=dataset_id, version=1, tags={"env": "prod", "x": "1"},
          metrics={"acc": math.nan}),
        R("r3", name="Alpha-2", status="KILLED", start=BASE + 3000, end=BASE + 3001, metrics={"acc": math.inf}),
        R("r4", name="delta", start=BASE + 4000, metrics={"acc": -1.5, "loss": 2.0}, params={"lr": "0.1"}),
        R("r5", name="epsilon", status="FINISHED", start=BASE + 5000, end=BASE + 6000, metrics={"acc": 0.9}),
        R("r6", name="zeta", start=BASE + 6000, deleted=True, metrics={"acc": 0.7}),
        R("r7", name="other-exp", start=BASE + 7000, exp="b", metrics={"acc": 0.1}),
    ]  # fmt: skip
    for r in runs:
        created = client.create_run(
            exp[r.exp], r.name, dataset_id=r.dataset or "", dataset_version=r.version or 0,
            model_id=r.model or "", params=r.params, tags=r.tags,
        )  # fmt: skip
        r.run_id = created["run_id"]
        if r.metrics:
            client.log_metrics(r.run_id, r.metrics)
        if r.status != "RUNNING":
            client.update_run(r.run_id, status=r.status)
        set_times(database, r.run_id, r.start, r.end)
        if r.deleted:
            client.delete_run(r.run_id)
    return World(client, exp, {r.key: r for r in runs})


# -- filters ---------------------------------------------------------------------------------

FILTERS: list[tuple[str, Callable[[R], bool]]] = [
    ("", lambda r: True),
    ("name = 'alpha'", lambda r: r.name == "alpha"),
    ("attributes.run_name LIKE 'alpha%'", lambda r: r.name.startswith("alpha")),
    ("name ILIKE 'alpha%'", lambda r: r.name.lower().startswith("alpha")),
    ("name IN ('beta', 'gamma', 'nope')", lambda r: r.name in ("beta", "gamma")),
    ("status = 'FINISHED'", lambda r: r.status == "FINISHED"),
    ("status = 'finished'", lambda r: r.status == "FINISHED"),
    ("status != 'RUNNING'", lambda r: r.status != "RUNNING"),
    ("status IN ('FAILED', 'KILLED')", lambda r: r.status in ("FAILED", "KILLED")),
    ("model_id IS NOT NULL", lambda r: r.model is not None),
    ("model_id IS NULL", lambda r: r.model is None),
    ("dataset_id IS NOT NULL", lambda r: r.dataset is not None),
    ("dataset_version = 2", lambda r: r.version == 2),
    ("dataset_version < 2", lambda r: r.version is not None and r.version < 2),
    ("start_time >= 1767225603000", lambda r: r.start >= BASE + 3000),
    ("start_time < '2026-01-01T00:00:01.000Z'", lambda r: r.start < BASE + 1000),
    ("end_time IS NULL", lambda r: r.end is None),
    ("end_time > 1767225600600", lambda r: r.end is not None and r.end > BASE + 600),
    ("params.lr = '0.1'", lambda r: r.params.get("lr") == "0.1"),
    ("params.lr != '0.1'", lambda r: "lr" in r.params and r.params["lr"] != "0.1"),
    ("params.lr IS NULL", lambda r: "lr" not in r.params),
    ("tags.env = 'prod'", lambda r: r.tags.get("env") == "prod"),
    ("tag.x IS NOT NULL", lambda r: "x" in r.tags),
    ("metrics.acc > 0.6", lambda r: r.metrics.get("acc", math.nan) > 0.6),
    ("metrics.acc <= 0.5", lambda r: r.metrics.get("acc", math.nan) <= 0.5),
    ("metrics.acc = 0.9", lambda r: r.metrics.get("acc") == 0.9),
    ("metrics.acc != 0.9", lambda r: not math.isnan(r.metrics.get("acc", math.nan)) and r.metrics["acc"] != 0.9),
    ("metrics.acc IN (0.5, -1.5)", lambda r: r.metrics.get("acc") in (0.5, -1.5)),
    ("metrics.loss IS NULL", lambda r: "loss" not in r.metrics),
    ("metrics.acc IS NOT NULL", lambda r: "acc" in r.metrics),
    ("metric.loss >= 1", lambda r: r.metrics.get("loss", math.nan) >= 1),
    ("status = 'FINISHED' OR tags.env = 'dev'", lambda r: r.status == "FINISHED" or r.tags.get("env") == "dev"),
    ("(metrics.acc > 0 AND params.lr IS NOT NULL) OR name = 'delta'",
     lambda r: (r.metrics.get("acc", math.nan) > 0 and "lr" in r.params) or r.name == "delta"),
    ("NOT (status = 'RUNNING')", lambda r: r.status != "RUNNING"),
]  # fmt: skip


@pytest.mark.parametrize(("text", "pred"), FILTERS, ids=[f[0] or "empty" for f in FILTERS])
def test_filter_and_its_exact_complement(world: World, text: str, pred: Callable[[R], bool]) -> None:
    assert world.search(text) == world.ids(pred)
    if text:
        assert world.search(f"NOT ({text})") == world.ids(lambda r: not pred(r))


def test_run_id_filter(world: World) -> None:
    r1 = world.runs["r1"].run_id
    assert world.search(f"run_id = '{r1}'") == {r1}
    assert world.search(f"attributes.run_id IN ('{r1}', '{world.runs['r7'].run_id}')") == {r1}


def test_views(world: World) -> None:
    assert world.search("", "DELETED_ONLY") == world.ids(lambda r: True, "deleted")
    assert world.search("", "ALL") == world.ids(lambda r: True, "all")
    assert world.search("metrics.acc > 0.6", "ALL") == world.ids(lambda r: r.metrics.get("acc", 0) > 0.6, "all")


def test_several_experiments(world: World) -> None:
    found = {r["run_id"] for r in world.client.search_runs([world.exp["a"], world.exp["b"], "987654"])}
    assert found == {r.run_id for r in world.runs.values() if not r.deleted}


# -- ordering and paging ---------------------------------------------------------------------


def pages(client: Client, req: pb.SearchRunsRequest) -> Iterator[pb.SearchRunsResponse]:
    copy = pb.SearchRunsRequest()
    copy.CopyFrom(req)
    while True:
        resp = client.runs.SearchRuns(copy)
        yield resp
        if not resp.next_page_token:
            return
        copy.page_token = resp.next_page_token


def paged_ids(world: World, order_by: list[str], filter: str = "", page_size: int = 2) -> list[str]:
    req = pb.SearchRunsRequest(experiment_ids=[world.exp["a"]], order_by=order_by, filter=filter, page_size=page_size)
    out: list[str] = []
    for page in pages(world.client, req):
        assert len(page.runs) <= page_size
        out += [r.run_id for r in page.runs]
    assert len(out) == len(set(out)), "a run was repeated"
    return out


def expected(world: World, key: Callable[[R], Any], pred: Callable[[R], bool] = lambda r: True) -> list[str]:
    runs = [r for r in world.runs.values() if r.exp == "a" and not r.deleted and pred(r)]
    return [r.run_id for r in sorted(runs, key=key)]


def metric_key(name: str, desc: bool) -> Callable[[R], Any]:
    """Missing (and NaN) last in both directions; run_id ascending breaks ties."""

    def key(r: R) -> Any:
        value = r.metrics.get(name, math.nan)
        if math.isnan(value):
            value = -math.inf if desc else math.inf
        return (-value if desc else value, r.run_id)

    return key


def test_default_order_is_start_time_desc_then_run_id(world: World) -> None:
    assert paged_ids(world, []) == expected(world, lambda r: (-r.start, r.run_id))


@pytest.mark.parametrize("desc", [False, True])
def test_order_by_name(world: World, desc: bool) -> None:
    got = paged_ids(world, ["name DESC" if desc else "name"])
    names = [r.name for r in sorted((r for r in world.runs.values() if r.exp == "a" and not r.deleted),
                                    key=lambda r: r.name, reverse=desc)]  # fmt: skip
    assert [next(r.name for r in world.runs.values() if r.run_id == i) for i in got] == names


@pytest.mark.parametrize("desc", [False, True])
def test_order_by_end_time_puts_unended_runs_last(world: World, desc: bool) -> None:
    def key(r: R) -> Any:
        if r.end is None:
            return (1, 0, r.run_id)
        return (0, -r.end if desc else r.end, r.run_id)

    assert paged_ids(world, [f"end_time {'DESC' if desc else 'ASC'}"]) == expected(world, key)


@pytest.mark.parametrize("desc", [False, True])
@pytest.mark.parametrize("page_size", [1, 2, 3, 100])
def test_order_by_metric_pages_without_skips_or_repeats(world: World, desc: bool, page_size: int) -> None:
    item = f"metrics.acc {'DESC' if desc else 'ASC'}"
    assert paged_ids(world, [item], page_size=page_size) == expected(world, metric_key("acc", desc))


def test_order_by_two_metrics_with_filter(world: World) -> None:
    got = paged_ids(world, ["metrics.loss DESC", "metrics.acc"], filter="start_time > 0")

    def key(r: R) -> Any:
        return (metric_key("loss", True)(r)[0], metric_key("acc", False)(r)[0], r.run_id)

    assert got == expected(world, key)


def test_order_by_start_time_asc_and_run_id_desc(world: World) -> None:
    got = paged_ids(world, ["start_time", "run_id DESC"])
    runs = sorted((r for r in world.runs.values() if r.exp == "a" and not r.deleted), key=lambda r: r.run_id,
                  reverse=True)  # fmt: skip
    assert got == [r.run_id for r in sorted(runs, key=lambda r: r.start)]


def test_paging_while_runs_are_added(world: World) -> None:
    req = pb.SearchRunsRequest(experiment_ids=[world.exp["a"]], order_by=["metrics.acc DESC"], page_size=2)
    first = world.client.runs.SearchRuns(req)
    late = world.client.create_run(world.exp["a"], "late")["run_id"]
    world.client.log_metrics(late, {"acc": 100.0})
    req.page_token = first.next_page_token
    rest = [r.run_id for p in pages(world.client, req) for r in p.runs]
    seen = [r.run_id for r in first.runs] + rest
    assert [i for i in seen if i != late] == expected(world, metric_key("acc", True))


def test_search_returns_params_tags_and_metrics_without_a_query_per_run(world: World, database: Database) -> None:
    statements: list[str] = []

    def count(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        statements.append(statement)

    world.client.runs.SearchRuns(pb.SearchRunsRequest(experiment_ids=[world.exp["a"]], page_size=1))  # warm up
    engines = {database.engine, database.read_engine}
    for engine in engines:
        sa.event.listen(engine, "before_cursor_execute", count)
    try:
        small = world.client.runs.SearchRuns(pb.SearchRunsRequest(experiment_ids=[world.exp["a"]], page_size=1))
        n_small = len(statements)
        statements.clear()
        big = world.client.runs.SearchRuns(pb.SearchRunsRequest(experiment_ids=[world.exp["a"]], page_size=100))
        n_big = len(statements)
    finally:
        for engine in engines:
            sa.event.remove(engine, "before_cursor_execute", count)
    assert len(small.runs) == 1 and len(big.runs) == 6
    assert n_big == n_small == 4  # the page, then params, tags and metrics of all its runs
    by_id = {r.run_id: r for r in big.runs}
    r0 = world.runs["r0"]
    got = by_id[r0.run_id]
    assert dict(got.params) == r0.params and dict(got.tags) == r0.tags
    assert [(m.name, m.value) for m in got.metrics] == sorted(r0.metrics.items())
    assert got.dataset.dataset_id == "" and by_id[world.runs["r1"].run_id].dataset.dataset_version == 2


# -- rejected searches -----------------------------------------------------------------------


def search_call(world: World, **fields: Any) -> Callable[[], Any]:
    fields.setdefault("experiment_ids", [world.exp["a"]])
    return lambda: world.client.runs.SearchRuns(pb.SearchRunsRequest(**fields))


@pytest.mark.parametrize(
    "text",
    [
        "nope = 1",
        "metrics.acc = 'x'",
        "metrics.acc LIKE '%'",
        "status = 'BOGUS'",
        "dataset_version = 'one'",
        "start_time > 'yesterday'",
        "name = 1",
        "name =",
        "params.lr > 1",
        "(name = 'a'",
        "tags.env RLIKE '('",
    ],
)
def test_bad_filters(world: World, text: str) -> None:
    expect_error(INVALID, "INVALID_FILTER", search_call(world, filter=text), "filter")


@pytest.mark.parametrize(
    "order",
    [["nope"], ["name SIDEWAYS"], ["name", "name DESC"], ["metrics."], ["params.lr"], ["name ASC extra"]],
)
def test_bad_orders(world: World, order: list[str]) -> None:
    expect_error(INVALID, "INVALID_ORDER_BY", search_call(world, order_by=order), "order_by")


def test_bad_request_fields(world: World) -> None:
    expect_error(INVALID, "INVALID_FIELD", search_call(world, experiment_ids=[]), "experiment_ids")
    too_many = [str(i) for i in range(101)]
    expect_error(INVALID, "INVALID_FIELD", search_call(world, experiment_ids=too_many), "experiment_ids")
    expect_error(INVALID, "INVALID_FIELD", search_call(world, experiment_ids=["x1"]), "experiment_ids")
    expect_error(INVALID, "INVALID_FIELD", search_call(world, page_size=-1), "page_size")
    expect_error(INVALID, "INVALID_FIELD", search_call(world, view=7), "view")


def test_bad_and_foreign_page_tokens(world: World) -> None:
    base: dict[str, Any] = {"order_by": ["metrics.acc DESC"], "filter": "start_time > 0", "page_size": 2}
    token = search_call(world, **base)().next_page_token
    assert token
    assert search_call(world, **base, page_token=token)().runs  # the token works where it was issued
    expect_error(INVALID, "INVALID_PAGE_TOKEN", search_call(world, **base, page_token="garbage"), "page_token")
    expect_error(INVALID, "INVALID_PAGE_TOKEN", search_call(world, **base, page_token=token[:-2]), "page_token")
    for change in (
        {"order_by": ["metrics.acc ASC"]},
        {"order_by": ["metrics.loss DESC"]},
        {"filter": "start_time > 1"},
        {"view": common_pb2.VIEW_TYPE_ALL},
        {"experiment_ids": [world.exp["a"], world.exp["b"]]},
    ):
        fields = base | change | {"page_token": token}
        expect_error(INVALID, "INVALID_PAGE_TOKEN", search_call(world, **fields), "page_token")
