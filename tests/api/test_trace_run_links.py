"""TraceService.LinkTracesToRun (SPEC §3.5) and SearchTraces' `run_id` key over links and the
`mlflow.sourceRun` metadata."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest

from mlgenai.client import Client
from mlgenai.v1 import trace_service_pb2 as pb
from store.uow import Database
from tests.api.run_support import RUN_TABLES, links
from tests.api.trace_support import Traces, tid
from tests.helpers import count_rows, expect_error, snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND


def record(n: int) -> str:
    return f"dr-{n:032x}"


@pytest.fixture
def traces(client: Client) -> Traces:
    return Traces(client)


@pytest.fixture
def exp_id(traces: Traces) -> str:
    return traces.experiment("evals")


def start(traces: Traces, exp_id: str, *numbers: int, source_run: str = "") -> list[str]:
    ids = []
    for n in numbers:
        metadata = {"mlflow.sourceRun": source_run} if source_run else {}
        traces.start(trace_id=tid(n), experiment_id=exp_id, trace_metadata=metadata)
        ids.append(tid(n))
    return ids


def link(client: Client, run_id: str, trace_ids: list[str], records: dict[str, str] | None = None) -> Any:
    req = pb.LinkTracesToRunRequest(run_id=run_id, trace_ids=trace_ids, dataset_record_ids=records or {})
    return client.traces.LinkTracesToRun(req)


def test_link_with_records_relink_and_idempotency(
    client: Client, database: Database, traces: Traces, exp_id: str
) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    ids = start(traces, exp_id, 1, 2, 3)
    link(client, run_id, ids, {ids[0]: record(1), ids[2]: record(3)})
    assert links(database) == {(run_id, ids[0]): record(1), (run_id, ids[1]): None, (run_id, ids[2]): record(3)}
    link(client, run_id, ids, {ids[0]: record(1), ids[2]: record(3)})  # again: the same links
    assert count_rows(database, "trace_run_links") == 3
    link(client, run_id, [ids[0], ids[1]], {ids[0]: record(9), ids[1]: record(2)})  # relink replaces the record
    assert links(database) == {(run_id, ids[0]): record(9), (run_id, ids[1]): record(2), (run_id, ids[2]): record(3)}
    link(client, run_id, [ids[0]])  # relinking without a record clears it
    assert links(database)[(run_id, ids[0])] is None


def test_traces_of_any_experiment_and_several_runs(
    client: Client, database: Database, traces: Traces, exp_id: str
) -> None:
    other = traces.experiment("other")
    mine = start(traces, exp_id, 1)
    theirs = start(traces, other, 2)
    run_a = client.create_run(exp_id)["run_id"]
    run_b = client.create_run(other)["run_id"]
    link(client, run_a, mine + theirs)
    link(client, run_b, mine)
    assert set(links(database)) == {(run_a, mine[0]), (run_a, theirs[0]), (run_b, mine[0])}


def test_deleting_a_trace_drops_its_links(client: Client, database: Database, traces: Traces, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    ids = start(traces, exp_id, 1, 2)
    link(client, run_id, ids)
    traces.delete(exp_id, trace_ids=[ids[0]])
    assert set(links(database)) == {(run_id, ids[1])}


def test_client_helper_splits_into_calls_of_100(
    client: Client, database: Database, traces: Traces, exp_id: str
) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    ids = start(traces, exp_id, *range(1, 251))
    client.link_traces_to_run(run_id, ids + ids[:5], {ids[0]: record(1), ids[249]: record(249)})
    stored = links(database, run_id)
    assert len(stored) == 250
    assert stored[(run_id, ids[0])] == record(1) and stored[(run_id, ids[249])] == record(249)


# -- rejected links --------------------------------------------------------------------------


def rejected(
    database: Database, code: grpc.StatusCode, reason: str, call: Callable[[], Any], field: str | None = None
) -> Any:
    before = snapshot(database, *RUN_TABLES)
    err = expect_error(code, reason, call, field)
    assert snapshot(database, *RUN_TABLES) == before
    return err


def test_missing_traces_link_nothing(client: Client, database: Database, traces: Traces, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    ids = start(traces, exp_id, 1, 2)
    link(client, run_id, [ids[0]], {ids[0]: record(1)})
    err = rejected(
        database,
        NF,
        "TRACE_NOT_FOUND",
        lambda: link(client, run_id, [tid(99), ids[0], ids[1], tid(98)], {ids[0]: record(5)}),
    )
    assert err.metadata["trace_ids"] == f"{tid(98)},{tid(99)}"
    assert links(database) == {(run_id, ids[0]): record(1)}


def test_unknown_or_deleted_run(client: Client, database: Database, traces: Traces, exp_id: str) -> None:
    ids = start(traces, exp_id, 1)
    err = rejected(database, NF, "RUN_NOT_FOUND", lambda: link(client, "a" * 32, ids))
    assert err.metadata["run_id"] == "a" * 32
    run_id = client.create_run(exp_id)["run_id"]
    client.delete_run(run_id)
    rejected(database, grpc.StatusCode.FAILED_PRECONDITION, "RUN_DELETED", lambda: link(client, run_id, ids))
    rejected(database, NF, "RUN_NOT_FOUND", lambda: link(client, "a" * 32, [tid(77)]))  # the run is checked first


def test_bad_input(client: Client, database: Database, traces: Traces, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    ids = start(traces, exp_id, 1, 2)
    cases: list[tuple[str, list[str], dict[str, str], str]] = [
        ("", ids, {}, "run_id"),
        ("A" * 32, ids, {}, "run_id"),
        (run_id, [], {}, "trace_ids"),
        (run_id, [tid(i) for i in range(101)], {}, "trace_ids"),
        (run_id, ["tr-123"], {}, "trace_ids[0]"),
        (run_id, [ids[0], "TR-" + "0" * 32], {}, "trace_ids[1]"),
        (run_id, [ids[0], ids[1], ids[0]], {}, "trace_ids[2]"),
        (run_id, [ids[0]], {ids[1]: record(1)}, f"dataset_record_ids[{ids[1]}]"),
        (run_id, ids, {ids[0]: "dr-1"}, f"dataset_record_ids[{ids[0]}]"),
        (run_id, ids, {ids[0]: "d-" + "0" * 32}, f"dataset_record_ids[{ids[0]}]"),
    ]
    for run, trace_ids, records, field in cases:
        rejected(database, INVALID, "INVALID_FIELD", lambda r=run, t=trace_ids, d=records: link(client, r, t, d), field)  # type: ignore[misc]


def test_100_ids_are_accepted(client: Client, database: Database, traces: Traces, exp_id: str) -> None:
    run_id = client.create_run(exp_id)["run_id"]
    ids = start(traces, exp_id, *range(100))
    link(client, run_id, ids)
    assert count_rows(database, "trace_run_links") == 100


# -- SearchTraces run_id -----------------------------------------------------------------------


def test_search_traces_by_run(client: Client, traces: Traces, exp_id: str) -> None:
    run_a = client.create_run(exp_id)["run_id"]
    run_b = client.create_run(exp_id)["run_id"]
    named_a = start(traces, exp_id, 1, source_run=run_a)  # metadata mlflow.sourceRun
    linked_a = start(traces, exp_id, 2)
    named_b_linked_a = start(traces, exp_id, 3, source_run=run_b)
    linked_both = start(traces, exp_id, 4)
    nothing = start(traces, exp_id, 5)
    link(client, run_a, linked_a + named_b_linked_a + linked_both)
    link(client, run_b, linked_both)
    every = set(named_a + linked_a + named_b_linked_a + linked_both + nothing)

    def found(text: str) -> set[str]:
        got = traces.search_ids([exp_id], text, page_size=2)
        assert len(got) == len(set(got))
        return set(got)

    cases = {
        f"run_id = '{run_a}'": set(named_a + linked_a + named_b_linked_a + linked_both),
        f"trace.run_id = '{run_b}'": set(named_b_linked_a + linked_both),
        f"run_id IN ('{run_b}', '{'f' * 32}')": set(named_b_linked_a + linked_both),
        f"run_id != '{run_a}'": set(named_b_linked_a + linked_both),  # has some run other than run_a
        f"run_id NOT IN ('{run_a}')": set(named_b_linked_a + linked_both),
        f"run_id LIKE '{run_b[:6]}%'": set(named_b_linked_a + linked_both),
        "run_id IS NULL": set(nothing),
        "run_id IS NOT NULL": every - set(nothing),
        f"run_id = '{'f' * 32}'": set(),
        f"run_id = '{run_a}' AND tags.x IS NULL": set(named_a + linked_a + named_b_linked_a + linked_both),
        f"run_id = '{run_b}' OR run_id IS NULL": set(named_b_linked_a + linked_both + nothing),
    }
    for text, want in cases.items():
        assert found(text) == want, text
        assert found(f"NOT ({text})") == every - want, f"NOT ({text})"
    expect_error(INVALID, "INVALID_FILTER", lambda: traces.search([exp_id], "run_id = 5"), "filter")
    expect_error(INVALID, "INVALID_FILTER", lambda: traces.search([exp_id], "run_id > 'a'"), "filter")
