"""SearchExperiments: every filter key, boolean logic, views, ordering and paging (SPEC §1.5, §1.6, §2)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import sqlalchemy as sa

from mlgenai.client import Client
from mlgenai.v1 import common_pb2, experiment_service_pb2 as pb
from store.uow import Database

BASE = 1_767_225_600_000  # 2026-01-01T00:00:00Z in epoch milliseconds
SECOND = 1_000


def set_times(db: Database, experiment_id: str, create: int, update: int) -> None:
    with db.engine.begin() as conn:
        conn.execute(
            sa.text("UPDATE experiments SET create_time = :c, update_time = :u WHERE experiment_id = :id"),
            {"c": create, "u": update, "id": int(experiment_id)},
        )


def insert_rows(db: Database, count: int, prefix: str) -> None:
    """Many experiments at once, straight into the table (for page-size limits)."""
    rows = [{"name": f"{prefix}-{i:05d}", "c": BASE + i, "u": BASE + i} for i in range(count)]
    with db.engine.begin() as conn:
        conn.execute(
            sa.text(
                "INSERT INTO experiments (name, artifact_location, lifecycle_stage, create_time, update_time) "
                "VALUES (:name, NULL, 'active', :c, :u)"
            ),
            rows,
        )


def pages(client: Client, req: pb.SearchExperimentsRequest) -> Iterator[pb.SearchExperimentsResponse]:
    """Every raw page of a search, following next_page_token."""
    copy = pb.SearchExperimentsRequest()
    copy.CopyFrom(req)
    req = copy
    while True:
        resp = client.experiments.SearchExperiments(req)
        yield resp
        if not resp.next_page_token:
            return
        req.page_token = resp.next_page_token


def ids_of(client: Client, req: pb.SearchExperimentsRequest) -> list[str]:
    return [e.experiment_id for page in pages(client, req) for e in page.experiments]


def names(client: Client, filter: str, view: str = "ACTIVE_ONLY") -> set[str]:
    found = [e["name"] for e in client.search_experiments(filter, view=view)]
    assert len(found) == len(set(found)), f"duplicates in {found}"
    return set(found)


# -- the catalog every filter test searches -------------------------------------------------


@dataclass
class Catalog:
    ids: dict[str, str]  # name -> experiment_id


@pytest.fixture
def catalog(client: Client, database: Database) -> Catalog:
    """Five experiments (one deleted) with known tags and times; Default moved to the far past."""
    specs: list[tuple[str, dict[str, str], int, int]] = [
        ("alpha", {"env": "prod", "team": "search", "team.name": "core"}, 1, 50),
        ("Alpha-2", {"env": "dev", "team": "Search"}, 2, 40),
        ("beta", {}, 3, 30),
        ("gamma", {"env": "prod", "owner": "ann"}, 4, 20),
        ("delta", {"env": "prod"}, 5, 10),
    ]
    ids: dict[str, str] = {}
    for name, tags, _create_s, _update_s in specs:
        ids[name] = client.create_experiment(name, tags=tags)["experiment_id"]
    for name, _tags, create_s, update_s in specs:
        set_times(database, ids[name], BASE + create_s * SECOND, BASE + update_s * SECOND)
    client.delete_experiment(ids["delta"])
    set_times(database, ids["delta"], BASE + 5 * SECOND, BASE + 10 * SECOND)
    set_times(database, "0", 1_000, 1_000)
    ids["Default"] = "0"
    return Catalog(ids)


ACTIVE = {"Default", "alpha", "Alpha-2", "beta", "gamma"}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("", ACTIVE),
        ("name = 'alpha'", {"alpha"}),
        ("name == 'alpha'", {"alpha"}),
        ("attributes.name = 'beta'", {"beta"}),
        ("name = 'ALPHA'", set()),
        ("name != 'alpha'", ACTIVE - {"alpha"}),
        ("name <> 'alpha'", ACTIVE - {"alpha"}),
        ("name LIKE 'a%'", {"alpha"}),
        ("name LIKE 'A%'", {"Alpha-2"}),
        ("name ILIKE 'a%'", {"alpha", "Alpha-2"}),
        ("name ILIKE 'ALPHA'", {"alpha"}),
        ("name LIKE '%ta'", {"beta"}),
        ("name LIKE '_eta'", {"beta"}),
        ("name NOT LIKE '%e%'", {"alpha", "Alpha-2", "gamma"}),
        ("name NOT ILIKE 'a%'", {"Default", "beta", "gamma"}),
        ("name IN ('alpha', 'beta', 'nope')", {"alpha", "beta"}),
        ("name NOT IN ('alpha', 'beta')", {"Default", "Alpha-2", "gamma"}),
        ("name RLIKE '^[ab]'", {"alpha", "beta"}),
        ("name RLIKE 'mm'", {"gamma"}),
        ("name NOT RLIKE 'a$'", {"Default", "Alpha-2"}),
    ],
)
def test_filter_by_name(client: Client, catalog: Catalog, filter: str, expected: set[str]) -> None:
    assert names(client, filter) == expected


def test_filter_by_experiment_id(client: Client, catalog: Catalog) -> None:
    ids = catalog.ids
    a, b, g = ids["alpha"], ids["beta"], ids["gamma"]
    assert names(client, f"experiment_id = {a}") == {"alpha"}
    assert names(client, f"experiment_id = '{a}'") == {"alpha"}
    assert names(client, f'experiment_id = "{a}"') == {"alpha"}
    assert names(client, f"attributes.experiment_id = {b}") == {"beta"}
    assert names(client, "experiment_id = 0") == {"Default"}
    assert names(client, "experiment_id = '0'") == {"Default"}
    assert names(client, f"experiment_id != {a}") == ACTIVE - {"alpha"}
    assert names(client, f"experiment_id IN ({a}, '{g}', 999999)") == {"alpha", "gamma"}
    assert names(client, f"experiment_id NOT IN ({a}, {g})") == ACTIVE - {"alpha", "gamma"}
    assert names(client, f"experiment_id >= {b}") == {n for n in ACTIVE if int(ids[n]) >= int(b)}
    assert names(client, f"experiment_id > {b}") == {n for n in ACTIVE if int(ids[n]) > int(b)}
    assert names(client, f"experiment_id < {b}") == {n for n in ACTIVE if int(ids[n]) < int(b)}
    assert names(client, f"experiment_id <= {b}") == {n for n in ACTIVE if int(ids[n]) <= int(b)}


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        (f"create_time = {BASE + 2 * SECOND}", {"Alpha-2"}),
        (f"create_time != {BASE + 2 * SECOND}", ACTIVE - {"Alpha-2"}),
        (f"create_time > {BASE + 2 * SECOND}", {"beta", "gamma"}),
        (f"create_time >= {BASE + 2 * SECOND}", {"Alpha-2", "beta", "gamma"}),
        (f"create_time < {BASE + 2 * SECOND}", {"Default", "alpha"}),
        (f"create_time <= {BASE + 2 * SECOND}", {"Default", "alpha", "Alpha-2"}),
        (f"create_time IN ({BASE + SECOND}, {BASE + 4 * SECOND})", {"alpha", "gamma"}),
        (f"create_time NOT IN ({BASE + SECOND}, {BASE + 4 * SECOND})", {"Default", "Alpha-2", "beta"}),
        (f"attributes.create_time = {BASE + 3 * SECOND}", {"beta"}),
        ("create_time = '2026-01-01T00:00:02Z'", {"Alpha-2"}),
        ("create_time = '2026-01-01T00:00:02.000Z'", {"Alpha-2"}),
        ("create_time = '2026-01-01T02:00:02+02:00'", {"Alpha-2"}),
        ("create_time > '2026-01-01T00:00:02Z'", {"beta", "gamma"}),
        ("create_time >= '2026-01-01T00:00:01.001Z'", {"Alpha-2", "beta", "gamma"}),
        ("create_time < '2025-12-31T19:00:01-05:00'", {"Default"}),
        ("create_time IN ('2026-01-01T00:00:01Z', '2026-01-01T00:00:03Z')", {"alpha", "beta"}),
        (f"update_time = {BASE + 30 * SECOND}", {"beta"}),
        (f"update_time > {BASE + 30 * SECOND}", {"alpha", "Alpha-2"}),
        (f"update_time <= {BASE + 30 * SECOND}", {"Default", "beta", "gamma"}),
        ("update_time >= '2026-01-01T00:00:40Z'", {"alpha", "Alpha-2"}),
        ("update_time < '2026-01-01T00:00:20.001Z'", {"Default", "gamma"}),
        (f"attributes.update_time = {BASE + 20 * SECOND}", {"gamma"}),
    ],
)
def test_filter_by_time(client: Client, catalog: Catalog, filter: str, expected: set[str]) -> None:
    assert names(client, filter) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("tags.env = 'prod'", {"alpha", "gamma"}),
        ("tags.env != 'prod'", {"Alpha-2"}),
        ("tags.env = 'PROD'", set()),
        ("tags.env LIKE 'pr%'", {"alpha", "gamma"}),
        ("tags.env LIKE 'PR%'", set()),
        ("tags.env ILIKE 'PR%'", {"alpha", "gamma"}),
        ("tags.team = 'search'", {"alpha"}),
        ("tags.team ILIKE 'search'", {"alpha", "Alpha-2"}),
        ("tags.env IN ('dev', 'prod')", {"alpha", "Alpha-2", "gamma"}),
        ("tags.env NOT IN ('dev')", {"alpha", "gamma"}),
        ("tags.env RLIKE '^d'", {"Alpha-2"}),
        ("tags.owner IS NOT NULL", {"gamma"}),
        ("tags.owner IS NULL", ACTIVE - {"gamma"}),
        ("tags.env IS NULL", {"Default", "beta"}),
        ("tags.missing = 'x'", set()),
        ("tags.`team.name` = 'core'", {"alpha"}),
        ("tags.`team.name` IS NOT NULL", {"alpha"}),
        ("tags.`env` = 'dev'", {"Alpha-2"}),
    ],
)
def test_filter_by_tags(client: Client, catalog: Catalog, filter: str, expected: set[str]) -> None:
    assert names(client, filter) == expected


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("name = 'alpha' OR name = 'beta'", {"alpha", "beta"}),
        ("name = 'alpha' or name = 'beta'", {"alpha", "beta"}),
        ("tags.env = 'prod' AND tags.owner = 'ann'", {"gamma"}),
        ("tags.env = 'prod' and name LIKE 'a%'", {"alpha"}),
        ("NOT tags.env = 'prod'", {"Default", "Alpha-2", "beta"}),
        ("not name LIKE '%e%'", {"alpha", "Alpha-2", "gamma"}),
        ("NOT (name = 'alpha' OR name = 'beta')", ACTIVE - {"alpha", "beta"}),
        ("name = 'beta' OR name = 'alpha' AND tags.env = 'dev'", {"beta"}),
        ("(name = 'beta' OR name = 'alpha') AND tags.env = 'prod'", {"alpha"}),
        ("name = 'alpha' AND (tags.env = 'prod' OR NOT tags.owner IS NULL)", {"alpha"}),
        ("((name = 'gamma'))", {"gamma"}),
        ("NOT NOT name = 'gamma'", {"gamma"}),
        ("tags.env = 'prod' AND NOT tags.owner IS NOT NULL", {"alpha"}),
        (f"create_time >= {BASE} AND (tags.env IS NULL OR tags.env = 'dev')", {"Alpha-2", "beta"}),
    ],
)
def test_boolean_logic(client: Client, catalog: Catalog, filter: str, expected: set[str]) -> None:
    assert names(client, filter) == expected


def test_views(client: Client, catalog: Catalog) -> None:
    assert names(client, "") == ACTIVE
    assert names(client, "", view="DELETED_ONLY") == {"delta"}
    assert names(client, "", view="ALL") == ACTIVE | {"delta"}
    assert names(client, "tags.env = 'prod'", view="ALL") == {"alpha", "gamma", "delta"}
    assert names(client, "tags.env = 'prod'", view="DELETED_ONLY") == {"delta"}
    unspecified = pb.SearchExperimentsRequest(view=common_pb2.VIEW_TYPE_UNSPECIFIED)
    assert {e.name for e in client.experiments.SearchExperiments(unspecified).experiments} == ACTIVE
    # Undeleting moves it back.
    client.undelete_experiment(catalog.ids["delta"])
    assert names(client, "", view="DELETED_ONLY") == set()
    assert "delta" in names(client, "")


def test_search_results_carry_every_field(client: Client, catalog: Catalog) -> None:
    for exp in client.search_experiments("", view="ALL"):
        assert exp == client.get_experiment(exp["experiment_id"])


def test_filter_values_match_literally(client: Client) -> None:
    client.create_experiment("it's 100% a_b")
    client.create_experiment("it's 100x aXb")
    assert names(client, "name = 'it''s 100% a_b'") == {"it's 100% a_b"}
    assert names(client, "name = 'it\\'s 100% a_b'") == {"it's 100% a_b"}
    assert names(client, 'name = "it\'s 100% a_b"') == {"it's 100% a_b"}
    assert names(client, "name LIKE '%100\\%%'") == {"it's 100% a_b"}
    assert names(client, "name LIKE '%a\\_b'") == {"it's 100% a_b"}
    assert names(client, "name LIKE '%a_b'") == {"it's 100% a_b", "it's 100x aXb"}


# -- ordering ------------------------------------------------------------------------------


@pytest.fixture
def ordered(client: Client, database: Database) -> list[dict[str, Any]]:
    """Nine experiments (lower-case names: the same order under any collation) with tied times."""
    plan = [("ord-e", 3, 7), ("ord-b", 1, 9), ("ord-h", 3, 7), ("ord-a", 2, 8), ("ord-g", 1, 9)]
    plan += [("ord-c", 3, 5), ("ord-i", 2, 8), ("ord-d", 4, 5), ("ord-f", 3, 7)]
    out = []
    for name, create_s, update_s in plan:
        eid = client.create_experiment(name)["experiment_id"]
        set_times(database, eid, BASE + create_s * SECOND, BASE + update_s * SECOND)
        out.append(client.get_experiment(eid))
    return out


def _expected(exps: list[dict[str, Any]], key: str, descending: bool) -> list[str]:
    """Sorted by ``key`` then the tie-breaker experiment_id ASC."""
    by_id = sorted(exps, key=lambda e: int(e["experiment_id"]))
    if key == "experiment_id":
        return [e["experiment_id"] for e in (reversed(by_id) if descending else by_id)]
    return [e["experiment_id"] for e in sorted(by_id, key=lambda e: e[key], reverse=descending)]


ORDER_FILTER = "name LIKE 'ord-%'"


@pytest.mark.parametrize("key", ["name", "experiment_id", "create_time", "update_time"])
@pytest.mark.parametrize("direction", ["ASC", "DESC", ""])
def test_order_by_each_key(client: Client, ordered: list[dict[str, Any]], key: str, direction: str) -> None:
    expected = _expected(ordered, key, direction == "DESC")
    for page_size in (0, 2):
        req = pb.SearchExperimentsRequest(
            filter=ORDER_FILTER, order_by=[f"{key} {direction}".strip()], page_size=page_size
        )
        assert ids_of(client, req) == expected
    prefixed = pb.SearchExperimentsRequest(filter=ORDER_FILTER, order_by=[f"attributes.{key} {direction}".strip()])
    assert ids_of(client, prefixed) == expected


def test_default_order_is_create_time_desc_then_id(client: Client, ordered: list[dict[str, Any]]) -> None:
    expected = _expected(ordered, "create_time", descending=True)
    assert ids_of(client, pb.SearchExperimentsRequest(filter=ORDER_FILTER)) == expected
    assert ids_of(client, pb.SearchExperimentsRequest(filter=ORDER_FILTER, page_size=1)) == expected


def test_order_by_several_keys(client: Client, ordered: list[dict[str, Any]]) -> None:
    expected = [e["experiment_id"] for e in sorted(ordered, key=lambda e: (-e["update_time"].timestamp(), e["name"]))]
    req = pb.SearchExperimentsRequest(filter=ORDER_FILTER, order_by=["update_time DESC", "name ASC"], page_size=3)
    assert ids_of(client, req) == expected
    expected = [e["experiment_id"] for e in sorted(ordered, key=lambda e: (e["create_time"], -int(e["experiment_id"])))]
    req = pb.SearchExperimentsRequest(filter=ORDER_FILTER, order_by=["create_time", "experiment_id DESC"], page_size=4)
    assert ids_of(client, req) == expected


# -- page sizes and paging -----------------------------------------------------------------


def test_default_page_size_is_100(client: Client, database: Database) -> None:
    insert_rows(database, 150, "bulk")
    first = client.experiments.SearchExperiments(pb.SearchExperimentsRequest())
    assert len(first.experiments) == 100 and first.next_page_token
    second = client.experiments.SearchExperiments(pb.SearchExperimentsRequest(page_token=first.next_page_token))
    assert len(second.experiments) == 51 and not second.next_page_token  # 150 + Default


def test_page_size_is_clamped_at_1000(client: Client, database: Database) -> None:
    insert_rows(database, 1_100, "bulk")
    for size in (1_000, 1_001, 5_000, 2**31 - 1):
        first = client.experiments.SearchExperiments(pb.SearchExperimentsRequest(page_size=size))
        assert len(first.experiments) == 1_000 and first.next_page_token
    req = pb.SearchExperimentsRequest(page_size=5_000, page_token=first.next_page_token)
    second = client.experiments.SearchExperiments(req)
    assert len(second.experiments) == 101 and not second.next_page_token
    all_ids = [e.experiment_id for e in first.experiments] + [e.experiment_id for e in second.experiments]
    assert len(set(all_ids)) == 1_101


ORDERS = [[], ["name ASC"], ["name DESC"], ["create_time ASC"], ["update_time DESC"], ["experiment_id DESC"]]


@pytest.mark.parametrize("order_by", ORDERS, ids=lambda o: ",".join(o) or "default")
def test_paging_returns_every_row_exactly_once(client: Client, database: Database, order_by: list[str]) -> None:
    for i in range(23):
        eid = client.create_experiment(f"page-{(i * 7) % 23:02d}")["experiment_id"]
        set_times(database, eid, BASE + (i % 4) * SECOND, BASE + (i % 3) * SECOND)
    whole = client.experiments.SearchExperiments(pb.SearchExperimentsRequest(order_by=order_by, page_size=1_000))
    assert len(whole.experiments) == 24 and not whole.next_page_token
    expected = [e.experiment_id for e in whole.experiments]
    for size in (1, 5, 7, 23, 24, 25):
        got: list[str] = []
        responses = list(pages(client, pb.SearchExperimentsRequest(order_by=order_by, page_size=size)))
        for resp in responses:
            assert 0 < len(resp.experiments) <= size
            got.extend(e.experiment_id for e in resp.experiments)
        assert got == expected, f"page_size {size}"
        assert len(responses) == -(-24 // size)


def test_page_size_may_change_between_pages(client: Client, database: Database) -> None:
    insert_rows(database, 30, "vary")
    expected = [
        e.experiment_id for e in client.experiments.SearchExperiments(pb.SearchExperimentsRequest()).experiments
    ]
    got: list[str] = []
    req = pb.SearchExperimentsRequest(page_size=4)
    for size in (4, 9, 1, 100):
        req.page_size = size
        resp = client.experiments.SearchExperiments(req)
        got.extend(e.experiment_id for e in resp.experiments)
        req.page_token = resp.next_page_token
    assert got == expected and not req.page_token


def test_helper_iterates_over_all_pages(client: Client, database: Database) -> None:
    insert_rows(database, 250, "helper")
    found = [e["experiment_id"] for e in client.search_experiments("name LIKE 'helper-%'", page_size=0)]
    assert len(found) == len(set(found)) == 250
