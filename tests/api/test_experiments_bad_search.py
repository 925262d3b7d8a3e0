"""SearchExperiments rejects bad filters, orders, page sizes and tokens; injection stays literal.

Each rejection asserts INVALID_ARGUMENT, the ``ErrorInfo`` reason, the violated request field
and that nothing was stored (SPEC §1.5, §1.6, §1.7).
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from contextlib import contextmanager

import grpc
import pytest

from mlgenai.client import Client, MlgenaiError
from mlgenai.v1 import common_pb2, experiment_service_pb2 as pb
from store.uow import Database
from tests.helpers import count_rows, expect_error, snapshot

TABLES = ("experiments", "experiment_tags", "request_ids")
INVALID = grpc.StatusCode.INVALID_ARGUMENT


@contextmanager
def nothing_stored(db: Database) -> Iterator[None]:
    before = snapshot(db, *TABLES)
    yield
    assert snapshot(db, *TABLES) == before, "a rejected call changed the database"


def search(client: Client, **fields: object) -> pb.SearchExperimentsResponse:
    return client.experiments.SearchExperiments(pb.SearchExperimentsRequest(**fields))  # type: ignore[arg-type]


def rejected(client: Client, database: Database, reason: str, field: str, **fields: object) -> MlgenaiError:
    with nothing_stored(database):
        return expect_error(INVALID, reason, lambda: search(client, **fields), field=field)


@pytest.fixture
def some(client: Client) -> list[str]:
    return [client.create_experiment(f"exp-{i}", tags={"env": "prod"})["experiment_id"] for i in range(3)]


# -- filters -------------------------------------------------------------------------------

UNKNOWN_KEYS = [
    ("foo = 'x'", "foo"),
    ("attributes.foo = 'x'", "foo"),
    ("params.lr = '1'", "params"),
    ("metrics.acc > 1", "metrics"),
    ("lifecycle_stage = 'active'", "lifecycle_stage"),
    ("artifact_location = 'x'", "artifact_location"),
    ("Name = 'x'", "Name"),
]
WRONG_COMPARATORS = [
    ("name > 5", ">"),
    ("name > 'a'", ">"),
    ("name <= 'a'", "<="),
    ("name IS NULL", "IS NULL"),
    ("name IS NOT NULL", "IS NOT NULL"),
    ("experiment_id LIKE '1%'", "LIKE"),
    ("experiment_id IS NULL", "IS NULL"),
    ("create_time ILIKE '2026%'", "ILIKE"),
    ("update_time RLIKE '1'", "RLIKE"),
    ("tags.env > 'a'", ">"),
]
WRONG_TYPES = [
    "name = 5",
    "name IN ('a', 5)",
    "name = TRUE",
    "name LIKE 5",
    "tags.env = 5",
    "experiment_id = 'abc'",
    "experiment_id = 1.5",
    "experiment_id IN (1, 'x')",
    "experiment_id = TRUE",
    "experiment_id = 99999999999999999999",
    "create_time = 'yesterday'",
    "create_time > '2026-13-01T00:00:00Z'",
    "create_time = '2026-01-01'",
    "create_time = TRUE",
    "update_time < 1.5e400",
]
MALFORMED = [
    "name",
    "name =",
    "= 'a'",
    "name 'a'",
    "name = 'a' AND",
    "AND name = 'a'",
    "name = 'a' OR",
    "(name = 'a'",
    "name = 'a')",
    "()",
    "NOT",
    "name = 'a' name = 'b'",
    "name IN ()",
    "name IN 'a'",
    "name IN ('a',)",
    "name IS 'a'",
    "name = 'a' && name = 'b'",
    "name = 'a';",
    "name === 'a'",
    "tags. = 'a'",
    "tags.`` = 'a'",
]
UNTERMINATED = ["name = 'abc", 'name = "abc', "tags.`env = 'x'", "name = 'it''s"]


@pytest.mark.parametrize(("filter", "token"), UNKNOWN_KEYS + WRONG_COMPARATORS)
def test_filter_names_the_offending_token(client: Client, database: Database, filter: str, token: str) -> None:
    err = rejected(client, database, "INVALID_FILTER", "filter", filter=filter)
    assert token in err.details(), err.details()


@pytest.mark.parametrize("filter", WRONG_TYPES + MALFORMED + UNTERMINATED)
def test_bad_filter(client: Client, database: Database, some: list[str], filter: str) -> None:
    rejected(client, database, "INVALID_FILTER", "filter", filter=filter)


def test_filter_length_limit(client: Client, database: Database) -> None:
    at_limit = "name = '" + "x" * (10_000 - 9) + "'"
    assert len(at_limit) == 10_000
    assert list(search(client, filter=at_limit).experiments) == []
    too_long = at_limit[:-1] + "x'"
    assert len(too_long) == 10_001
    rejected(client, database, "INVALID_FILTER", "filter", filter=too_long)
    rejected(client, database, "INVALID_FILTER", "filter", filter="name = 'a'" + " " * 9_991)


# -- injection -----------------------------------------------------------------------------


def test_sql_in_filter_values_matches_literally(client: Client, database: Database) -> None:
    tricky = "x' OR '1'='1"
    target = client.create_experiment(tricky, tags={"env": "a'); DELETE FROM experiments; --"})
    client.create_experiment("victim", tags={"env": "prod"})
    before = snapshot(database, *TABLES)

    def ids(filter: str) -> list[str]:
        return [e["experiment_id"] for e in client.search_experiments(filter, view="ALL")]

    assert ids("name = 'x'' OR ''1''=''1'") == [target["experiment_id"]]
    assert ids("name = ''' OR 1=1 --'") == []
    assert ids("name LIKE '%''; DROP TABLE experiments; --%'") == []
    assert ids("name IN ('a'') OR 1=1 --')") == []
    assert ids("tags.env = 'a''); DELETE FROM experiments; --'") == [target["experiment_id"]]
    assert ids("name RLIKE '.*'' OR ''1''=''1'") == [target["experiment_id"]]
    assert snapshot(database, *TABLES) == before
    assert count_rows(database, "experiments") == 3


@pytest.mark.parametrize(
    "filter",
    [
        "name; DROP TABLE experiments; -- = 'x'",
        "name = 'x'; DROP TABLE experiments; --",
        "1=1 OR name = 'x'",
        "experiment_id = 1 OR 1=1",
        "experiment_id = '1 OR 1=1'",
        "tags.env' OR '1'='1 = 'x'",
        "name = 'a' UNION SELECT * FROM experiments",
        "(SELECT 1) = 1",
        "name = 'a' --",
    ],
)
def test_sql_in_filter_syntax_is_rejected(client: Client, database: Database, some: list[str], filter: str) -> None:
    rejected(client, database, "INVALID_FILTER", "filter", filter=filter)
    assert count_rows(database, "experiments") == 4


def test_backtick_quoted_tag_key_with_sql_matches_literally(client: Client, database: Database) -> None:
    key = "k'; DROP TABLE experiments; --"
    exp = client.create_experiment("keyed", tags={key: "v"})
    client.create_experiment("other", tags={"k": "v"})
    found = [e["experiment_id"] for e in client.search_experiments(f"tags.`{key}` = 'v'")]
    assert found == [exp["experiment_id"]]
    assert [e["name"] for e in client.search_experiments("tags.`k` = 'v'")] == ["other"]
    assert count_rows(database, "experiments") == 3


# -- order_by ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "order_by",
    [
        ["foo"],
        ["tags.env"],
        ["lifecycle_stage"],
        ["artifact_location DESC"],
        ["name UP"],
        ["name ASC DESC"],
        ["name DESCENDING"],
        [""],
        ["name", "name DESC"],
        ["create_time", "attributes.create_time DESC"],
        ["name; DROP TABLE experiments"],
        ["name DESC; DROP TABLE experiments"],
        ["name, create_time"],
    ],
)
def test_bad_order_by(client: Client, database: Database, some: list[str], order_by: list[str]) -> None:
    rejected(client, database, "INVALID_ORDER_BY", "order_by", order_by=order_by)


# -- page size and tokens ------------------------------------------------------------------


@pytest.mark.parametrize("page_size", [-1, -1000, -(2**31)])
def test_negative_page_size(client: Client, database: Database, some: list[str], page_size: int) -> None:
    rejected(client, database, "INVALID_FIELD", "page_size", page_size=page_size)


def _token(client: Client, **fields: object) -> str:
    token = search(client, page_size=1, **fields).next_page_token
    assert token
    return token


@pytest.mark.parametrize(
    "token",
    ["garbage", "!!!!", "a" * 100, "A" * 5000, base64.urlsafe_b64encode(b"\x01" * 40).decode(), " ", "0"],
    ids=["word", "symbols", "letters", "long", "b64-bytes", "space", "zero"],
)
def test_garbage_page_token(client: Client, database: Database, some: list[str], token: str) -> None:
    rejected(client, database, "INVALID_PAGE_TOKEN", "page_token", page_token=token)


def _tampered(token: str) -> list[str]:
    mid = len(token) // 2
    flipped = token[:mid] + ("B" if token[mid] != "B" else "C") + token[mid + 1 :]
    raw = bytearray(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    raw[len(raw) // 2] ^= 0x01
    rebuilt = base64.urlsafe_b64encode(bytes(raw)).decode().rstrip("=")
    return [flipped, rebuilt, token[:-4], token + "AAAA", token[::-1]]


def test_tampered_page_token(client: Client, database: Database, some: list[str]) -> None:
    token = _token(client)
    for bad in _tampered(token):
        assert bad != token
        rejected(client, database, "INVALID_PAGE_TOKEN", "page_token", page_token=bad)
    # The untouched token still works.
    assert len(search(client, page_size=1, page_token=token).experiments) == 1


@pytest.mark.parametrize(
    "changed",
    [
        {"filter": "tags.env = 'dev'"},
        {"filter": "tags.env = 'prod' "},
        {"order_by": ["name ASC"]},
        {"order_by": ["create_time ASC"]},
        {"order_by": ["create_time DESC", "name ASC"]},
        {"view": common_pb2.VIEW_TYPE_ALL},
        {"view": common_pb2.VIEW_TYPE_DELETED_ONLY},
    ],
    ids=["filter", "filter-whitespace", "order", "direction", "extra-key", "view-all", "view-deleted"],
)
def test_page_token_bound_to_its_query(
    client: Client, database: Database, some: list[str], changed: dict[str, object]
) -> None:
    issued = {"filter": "tags.env = 'prod'", "order_by": ["create_time DESC"], "view": common_pb2.VIEW_TYPE_ACTIVE_ONLY}
    token = _token(client, **issued)
    reused = {**issued, **changed, "page_token": token, "page_size": 1}
    rejected(client, database, "INVALID_PAGE_TOKEN", "page_token", **reused)
    # With the query it was issued for, the token works.
    assert len(search(client, page_size=1, page_token=token, **issued).experiments) == 1
