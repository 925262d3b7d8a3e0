"""Many raters claim and submit at once (SPEC §8.3): every item ends COMPLETED with exactly N
distinct raters, nobody labels an item twice, every acknowledged submission is stored.

PostgreSQL: 16 raters on two server processes (row locks, ``FOR UPDATE SKIP LOCKED``).
SQLite: 4 raters on one process (writes are serialized by ``BEGIN IMMEDIATE``).
"""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from mlgenai.client import Client, connect, span
from server.app import RunningServer
from server.childproc import ServerProcess
from store.uow import Database
from tests.api.labeling_support import make_schema, rows
from tests.helpers import count_rows

ITEMS = 500
N = 3


def _prepare(client: Client, items: int) -> tuple[str, str, list[str], dict[str, Any]]:
    """An experiment with two schemas, ``items`` traces and a session over them (N = 3)."""
    exp = str(client.create_experiment("crowd")["experiment_id"])
    good = make_schema(client, exp, "correct")
    score = make_schema(client, exp, "score", kind="numeric", expectation=True, min_value=0, max_value=10)
    spans = [span(f"tr-{i + 1:032x}", "root") for i in range(items)]
    client.log_spans(exp, spans)
    traces = [s["trace_id"] for s in spans]
    session = client.create_labeling_session(exp, "crowd", [good, score], raters_per_item=N)
    sid = session["labeling_session_id"]
    client.add_items(sid, trace_ids=traces)
    return sid, exp, traces, {good: True, score: 5}


def _rate(targets: list[str], sid: str, raters: int, values: dict[str, Any]) -> list[tuple[str, str, list[str]]]:
    """``raters`` threads claim and submit until none gets an item; the acknowledged
    submissions as (item id, rater, assessment ids)."""
    start = threading.Barrier(raters)

    def rater(n: int) -> list[tuple[str, str, list[str]]]:
        name = f"rater-{n:02d}"
        done = []
        with connect(targets[n % len(targets)], timeout=120) as own:
            start.wait()
            while (claim := own.claim_next_item(sid, name)) is not None:
                item = claim["item"]["item_id"]
                result = own.submit_labels(sid, item, name, values)
                done.append((item, name, result["submission"]["assessment_ids"]))
        return done

    with ThreadPoolExecutor(raters) as pool:
        return [d for ds in pool.map(rater, range(raters)) for d in ds]


def _check(db: Database, client: Client, sid: str, traces: list[str], acked: list[tuple[str, str, list[str]]]) -> None:
    items = list(client.list_items(sid))
    assert len(items) == len(traces)
    assert all(i["state"] == "COMPLETED" and len(set(i["raters"])) == len(i["raters"]) == N for i in items)
    # no rater labeled an item twice, and every acknowledged submission is what is stored
    pairs = Counter((item, rater) for item, rater, _ in acked)
    assert max(pairs.values()) == 1
    assert len(acked) == N * len(traces)
    stored = {(r.item_id, r.rater) for r in rows(db, "SELECT item_id, rater, status FROM labeling_item_raters")}
    assert stored == set(pairs)
    assert count_rows(db, "labeling_item_raters", "status <> 'submitted'") == 0
    assert count_rows(db, "labeling_labels") == 2 * N * len(traces)
    assert count_rows(db, "labeling_leases") == 0
    assert count_rows(db, "labeling_items", f"state <> 'completed' OR submitted <> {N}") == 0
    # exactly N valid HUMAN assessments per trace and schema name, one per rater
    by_item = {i["item_id"]: i for i in items}
    raters_of: dict[str, set[str]] = defaultdict(set)
    for item, rater, _ in acked:
        raters_of[by_item[item]["source"]["trace_id"]].add(rater)
    found: dict[tuple[str, str], list[str]] = defaultdict(list)
    for a in rows(db, "SELECT trace_id, name, source_id FROM assessments WHERE source_type = 'HUMAN' AND valid"):
        found[(a.trace_id, a.name)].append(a.source_id)
    assert len(found) == 2 * len(traces)
    for (trace, _name), sources in found.items():
        assert sorted(sources) == sorted(raters_of[trace])
    acked_ids = {a for _, _, ids in acked for a in ids}
    assert acked_ids == {r[0] for r in rows(db, "SELECT assessment_id FROM assessments WHERE source_type = 'HUMAN'")}
    progress = client.get_labeling_session(sid)["progress"]
    assert progress["completed_items"] == len(traces) and progress["submissions"] == N * len(traces)


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_16_raters_on_two_processes(backend: str, db_url: str, database: Database) -> None:
    with ServerProcess(db_url) as first, ServerProcess(db_url) as second, connect(first.target, timeout=120) as client:
        sid, _, traces, values = _prepare(client, ITEMS)
        began = time.monotonic()
        acked = _rate([first.target, second.target], sid, 16, values)
        elapsed = time.monotonic() - began
        _check(database, client, sid, traces, acked)
    print(f"\n16 raters, 2 processes: {len(acked)} submissions in {elapsed:.1f} s")


@pytest.mark.slow
@pytest.mark.sqlite_only
def test_4_raters_on_sqlite(backend: str, client: Client, server: RunningServer, database: Database) -> None:
    sid, _, traces, values = _prepare(client, ITEMS)
    began = time.monotonic()
    acked = _rate([f"127.0.0.1:{server.port}"], sid, 4, values)
    elapsed = time.monotonic() - began
    _check(database, client, sid, traces, acked)
    print(f"\n4 raters, SQLite: {len(acked)} submissions in {elapsed:.1f} s")
