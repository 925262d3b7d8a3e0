"""Keyset paging while experiments are being created (SPEC §1.5).

A background thread keeps creating experiments through its own connection while the test
thread pages through SearchExperiments with page_size 7. Every experiment that existed before
the first page must come back exactly once, nothing may repeat, and the pages must stay in
order. The writer's pace is set by budget the test grants after each page (see ``Writer``),
not by sleeps.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import pytest

from mlgenai.client import Client, connect
from mlgenai.v1 import experiment_pb2, experiment_service_pb2 as pb
from store.uow import Database
from tests.helpers import count_rows

EXISTING = 100
PAGE_SIZE = 7
GRANT_PER_PAGE = 5  # experiments the writer may create after each page
COMMITTED_BEFORE_NEXT_PAGE = 3  # of which at least this many are committed before the next page
WAIT_S = 60


class Writer(threading.Thread):
    """Creates experiments through its own connection as fast as its budget allows.

    The test thread grants budget after each page and waits until most of it is committed, so
    rows are inserted between every two pages while the rest race with the next page's query.
    """

    def __init__(self, target: str) -> None:
        super().__init__(daemon=True)
        self.target = target
        self.created = 0
        self.budget = 0
        self.done = False
        self.stopping = False
        self.error: BaseException | None = None
        self.cond = threading.Condition()

    def run(self) -> None:
        try:
            with connect(self.target, timeout=60) as client:
                n = 0
                while True:
                    with self.cond:
                        self.cond.wait_for(lambda: self.stopping or self.created < self.budget)
                        if self.stopping:
                            return
                    # Names interleave with the existing ones (pre-000, pre-000-new-…, pre-001, …).
                    client.create_experiment(f"pre-{(n * 37) % EXISTING:03d}-new-{n:03d}")
                    n += 1
                    with self.cond:
                        self.created = n
                        self.cond.notify_all()
        except BaseException as exc:  # reported by the test thread
            self.error = exc
        finally:
            with self.cond:
                self.done = True
                self.cond.notify_all()

    def grant_and_wait(self) -> None:
        with self.cond:
            self.budget += GRANT_PER_PAGE
            self.cond.notify_all()
            want = self.budget - GRANT_PER_PAGE + COMMITTED_BEFORE_NEXT_PAGE
            ok = self.cond.wait_for(lambda: self.created >= want or self.done, timeout=WAIT_S)
        assert ok, "the writer made no progress"
        assert self.error is None, f"writer failed: {self.error!r}"

    def stop(self) -> None:
        with self.cond:
            self.stopping = True
            self.cond.notify_all()
        self.join(timeout=WAIT_S)


SortKey = Callable[[experiment_pb2.Experiment], tuple[Any, ...]]

ORDERS: dict[str, tuple[list[str], SortKey]] = {
    "default": ([], lambda e: (-e.create_time.ToMilliseconds(), int(e.experiment_id))),
    "name-asc": (["name ASC"], lambda e: (e.name, int(e.experiment_id))),
    "create-time-asc": (["create_time ASC"], lambda e: (e.create_time.ToMilliseconds(), int(e.experiment_id))),
}


@pytest.fixture
def existing(client: Client) -> set[str]:
    ids = {client.create_experiment(f"pre-{i:03d}")["experiment_id"] for i in range(EXISTING)}
    return ids | {"0"}


@pytest.mark.parametrize("order", ORDERS)
def test_paging_during_inserts(client: Client, database: Database, target: str, existing: set[str], order: str) -> None:
    order_by, sort_key = ORDERS[order]
    writer = Writer(target)
    writer.start()
    seen: list[experiment_pb2.Experiment] = []
    pages = 0
    try:
        req = pb.SearchExperimentsRequest(order_by=order_by, page_size=PAGE_SIZE)
        while True:
            resp = client.experiments.SearchExperiments(req)
            pages += 1
            assert len(resp.experiments) <= PAGE_SIZE
            seen.extend(resp.experiments)
            if not resp.next_page_token:
                break
            req.page_token = resp.next_page_token
            writer.grant_and_wait()
    finally:
        writer.stop()
    assert not writer.is_alive()
    assert writer.error is None, f"writer failed: {writer.error!r}"

    ids = [e.experiment_id for e in seen]
    assert len(ids) == len(set(ids)), "an experiment was returned twice"
    missing = existing - set(ids)
    assert not missing, f"{len(missing)} experiments that existed before the first page were skipped"
    keys = [sort_key(e) for e in seen]
    assert keys == sorted(keys), "pages are out of order"
    assert pages >= (EXISTING + 1) // PAGE_SIZE
    # The writer really wrote while the test paged, and everything it wrote was stored.
    assert writer.created >= COMMITTED_BEFORE_NEXT_PAGE * (pages - 1)
    assert count_rows(database, "experiments") == EXISTING + 1 + writer.created


def test_token_survives_inserts_before_its_cursor(client: Client, existing: set[str]) -> None:
    """Default order (newest first): rows created later sort before the cursor and change nothing."""
    first = client.experiments.SearchExperiments(pb.SearchExperimentsRequest(page_size=PAGE_SIZE))
    token = first.next_page_token
    second = client.experiments.SearchExperiments(pb.SearchExperimentsRequest(page_size=PAGE_SIZE, page_token=token))
    for i in range(20):
        client.create_experiment(f"later-{i:02d}")
    again = client.experiments.SearchExperiments(pb.SearchExperimentsRequest(page_size=PAGE_SIZE, page_token=token))
    assert again == second


def test_token_survives_inserts_after_its_cursor(client: Client, existing: set[str]) -> None:
    """name ASC: rows created after the cursor show up in their place; earlier pages stay unseen."""
    req = pb.SearchExperimentsRequest(order_by=["name ASC"], page_size=PAGE_SIZE)
    first = client.experiments.SearchExperiments(req)
    last_name = first.experiments[-1].name
    client.create_experiment("a-before-everything")  # sorts before the cursor: never returned
    client.create_experiment(last_name + "-inserted")  # sorts right after the cursor
    req.page_token = first.next_page_token
    second = client.experiments.SearchExperiments(req)
    assert second.experiments[0].name == last_name + "-inserted"
    rest = [e["name"] for e in client.search_experiments(order_by=["name ASC"])]
    assert [e.name for e in second.experiments] == rest[rest.index(last_name) + 1 :][:PAGE_SIZE]
    assert len(existing) == EXISTING + 1
