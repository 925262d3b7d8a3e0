"""SyncToDataset (SPEC §8.4): one record per COMPLETED item, expectations from the consensus of
the EXPECTATION-type labels, disagreements in record tags, through the dataset merge."""

from __future__ import annotations

import json
import time
from typing import Any

import grpc

from mlgenai.client import Client, new_trace_id, span
from store import limits
from store.repositories.labeling_results import disagreement_key, disagreement_value
from store.uow import Database
from tests.api.dataset_support import DATASET_TABLES
from tests.helpers import count_rows, expect_error, snapshot

SESSION_TAG = "mlgenai.labeling.session"
DISAGREE = "mlgenai.labeling.disagreement."
MISSING_SESSION = "lbs-" + "0" * 32
MISSING_DATASET = "d-" + "0" * 32


def sync(client: Client, session_id: str, dataset_id: str = "") -> dict[str, Any]:
    return client.sync_to_dataset(session_id, dataset_id)


def log_trace(client: Client, exp: str, inputs: Any, outputs: Any) -> str:
    tid = new_trace_id()
    root = span(tid, "agent", inputs=inputs, outputs=outputs)
    client.log_spans(exp, [root, span(tid, "llm", parent=root, inputs={"prompt": "not the root"})])
    return tid


def records_by_input(client: Client, dataset_id: str, key: str) -> dict[Any, dict[str, Any]]:
    return {r["inputs"][key]: r for r in client.iter_records(dataset_id)}


def submit_in_order(client: Client, session: str, item: str, answers: list[tuple[str, dict[str, Any]]]) -> None:
    """Submit one rater after the other, each in a later millisecond than the previous one."""
    for rater, values in answers:
        client.submit_labels(session, item, rater, values)
        time.sleep(0.003)


def test_sync_trace_items_majority_median_disagreements_and_resync(client: Client, database: Database) -> None:
    exp = client.create_experiment("sync")["experiment_id"]
    ids = {
        name: client.create_label_schema(exp, name, type="expectation", **kind)["schema_id"]
        for name, kind in (
            ("verdict", {"pass_fail": {}}),
            ("topic", {"categorical": ["x", "y", "z"]}),
            ("facets", {"categorical": {"options": ["a", "b", "c"], "multi_select": True}}),
            ("score", {"numeric": {}}),
            ("answer", {"text": {}}),
        )
    }
    ids["helpful"] = client.create_label_schema(exp, "helpful", pass_fail={})["schema_id"]  # feedback
    ds = client.create_dataset("gold", experiment_ids=[exp])["dataset_id"]
    session = client.create_labeling_session(exp, "review", list(ids.values()), raters_per_item=3, dataset_id=ds)
    sid = session["labeling_session_id"]
    traces = [log_trace(client, exp, {"q": i}, {"a": f"answer {i}"}) for i in range(4)]
    client.log_expectation(traces[0], "expected_facts", ["f1"])  # kept: no schema has that name
    client.log_expectation(traces[0], "verdict", False)  # overwritten by the labels' consensus
    items = [i["item_id"] for i in client.add_items(sid, trace_ids=traces)["items"]]

    def v(verdict: bool, topic: str, facets: list[str], score: float, answer: str, helpful: bool) -> dict[str, Any]:
        given = {"verdict": verdict, "topic": topic, "facets": facets, "score": score, "answer": answer}
        return {ids[k]: value for k, value in {**given, "helpful": helpful}.items()}

    # Item 0: everybody agrees (the same set of facets in another order is the same answer);
    # the feedback schema differs, which is no disagreement.
    submit_in_order(client, sid, items[0], [
        ("r1", v(True, "x", ["a", "b"], 4, "Paris", True)),
        ("r2", v(True, "x", ["b", "a"], 4.0, "Paris", False)),
        ("r3", v(True, "x", ["a", "b"], 4, "Paris", True)),
    ])  # fmt: skip
    # Item 1: majorities and the median.
    submit_in_order(client, sid, items[1], [
        ("r1", v(True, "y", ["a"], 1, "A", True)),
        ("r2", v(False, "y", ["a", "b"], 5, "B", True)),
        ("r3", v(False, "x", ["b", "a"], 3, "B", True)),
    ])  # fmt: skip
    # Item 2: three-way ties go to the earliest submission, not to the smallest rater id.
    submit_in_order(client, sid, items[2], [
        ("zed", v(False, "z", ["c"], 2.5, "first", True)),
        ("amy", v(True, "x", ["a"], 2, "second", True)),
        ("bob", v(True, "y", ["b"], 10, "third", True)),
    ])  # fmt: skip
    # Item 3: two submissions of three, not COMPLETED: not synced.
    submit_in_order(
        client, sid, items[3], [("r1", v(True, "x", ["a"], 1, "A", True)), ("r2", v(True, "x", ["a"], 1, "A", True))]
    )

    first = sync(client, sid)
    assert (first["items"], first["disagreements"]) == (3, 2)
    merge = first["merge"]
    assert (merge["created_count"], merge["updated_count"], merge["unchanged_count"]) == (3, 0, 0)
    assert (merge["version"], merge["num_records"]) == (1, 3)
    assert [r["outcome"] for r in merge["results"]] == ["CREATED"] * 3
    records = records_by_input(client, ds, "q")
    assert sorted(records) == [0, 1, 2]
    agreed, majority, tied = records[0], records[1], records[2]
    assert [r["dataset_record_id"] for r in merge["results"]] == [
        r["dataset_record_id"] for r in (agreed, majority, tied)
    ]

    assert agreed["outputs"] == {"a": "answer 0"}
    assert agreed["source"] == {"source_type": "TRACE", "source_data": {"trace_id": traces[0]}}
    assert agreed["expectations"] == {
        "expected_facts": ["f1"], "verdict": True, "topic": "x", "facets": ["a", "b"], "score": 4, "answer": "Paris",
    }  # fmt: skip
    assert agreed["tags"] == {SESSION_TAG: sid}

    assert majority["expectations"] == {"verdict": False, "topic": "y", "facets": ["a", "b"], "score": 3, "answer": "B"}
    assert majority["tags"] == {
        SESSION_TAG: sid,
        DISAGREE + "verdict": '{"r1":true,"r2":false,"r3":false}',
        DISAGREE + "topic": '{"r1":"y","r2":"y","r3":"x"}',
        DISAGREE + "facets": '{"r1":["a"],"r2":["a","b"],"r3":["b","a"]}',
        DISAGREE + "score": '{"r1":1,"r2":5,"r3":3}',
        DISAGREE + "answer": '{"r1":"A","r2":"B","r3":"B"}',
    }
    assert tied["expectations"] == {"verdict": True, "topic": "z", "facets": ["c"], "score": 2.5, "answer": "first"}
    assert json.loads(tied["tags"][DISAGREE + "topic"]) == {"amy": "x", "bob": "y", "zed": "z"}
    assert DISAGREE + "helpful" not in tied["tags"]

    # Syncing again without new labels changes nothing: no new version.
    versions = count_rows(database, "evaluation_dataset_versions")
    again = sync(client, sid)
    assert (again["items"], again["disagreements"]) == (3, 2)
    assert (again["merge"]["unchanged_count"], again["merge"]["version"]) == (3, 1)
    assert again["merge"]["digest"] == merge["digest"]
    assert count_rows(database, "evaluation_dataset_versions") == versions
    assert client.get_dataset(ds)["version"] == 1

    # A rater changing their labels moves the consensus: one new version, one record updated.
    client.submit_labels(sid, items[1], "r1", v(False, "y", ["a"], 6, "A", True))
    third = sync(client, sid)
    assert (third["merge"]["version"], third["merge"]["updated_count"], third["merge"]["unchanged_count"]) == (2, 1, 2)
    updated = records_by_input(client, ds, "q")[1]
    assert (updated["expectations"]["verdict"], updated["expectations"]["score"]) == (False, 5)
    assert updated["tags"][DISAGREE + "score"] == '{"r1":6,"r2":5,"r3":3}'
    # The raters now agree on the verdict; the tag of the past disagreement stays (a merge
    # adds and overwrites tags, it cannot remove one).
    assert updated["tags"][DISAGREE + "verdict"] == '{"r1":true,"r2":false,"r3":false}'
    assert sorted(x["version"] for x in client.list_dataset_versions(ds)) == [1, 2]


def test_sync_record_items_even_counts_and_other_dataset(client: Client, database: Database) -> None:
    exp = client.create_experiment("sync-records")["experiment_id"]
    ok = client.create_label_schema(exp, "ok", type="expectation", pass_fail={})["schema_id"]
    score = client.create_label_schema(exp, "score", type="expectation", numeric={})["schema_id"]
    response = client.create_label_schema(exp, "expected_response", type="expectation", text={})["schema_id"]
    source = client.create_dataset("source", experiment_ids=[exp])["dataset_id"]
    seeded = client.merge_records(source, [
        {"inputs": {"q": "one"}, "outputs": "out 1", "expectations": {"expected_response": "old", "keep": 1},
         "source": {"source_type": "DOCUMENT", "source_data": {"doc": "d1"}}, "tags": {"own": "tag"}},
        {"inputs": {"q": "two"}},
    ])  # fmt: skip
    record_ids = [r["dataset_record_id"] for r in seeded["results"]]
    session = client.create_labeling_session(
        exp, "records", [ok, score, response], raters_per_item=2, dataset_id=source
    )
    sid = session["labeling_session_id"]
    items = [i["item_id"] for i in client.add_items(sid, records=[(source, r) for r in record_ids])["items"]]
    # Two raters: a pass/fail tie goes to the earlier submission, the median of two is their mean.
    submit_in_order(client, sid, items[0], [
        ("zoe", {ok: True, score: 1, response: "new"}), ("adam", {ok: False, score: 4, response: "new"})
    ])  # fmt: skip
    submit_in_order(client, sid, items[1], [
        ("zoe", {ok: False, score: 7, response: "x"}), ("adam", {ok: True, score: 8, response: "y"})
    ])  # fmt: skip

    # Into the records' own dataset (the session's): the records are updated in place.
    done = sync(client, sid)
    assert (done["items"], done["disagreements"]) == (2, 2)
    assert (done["merge"]["updated_count"], done["merge"]["created_count"], done["merge"]["version"]) == (2, 0, 2)
    assert [r["dataset_record_id"] for r in done["merge"]["results"]] == record_ids
    one, two = records_by_input(client, source, "q")["one"], records_by_input(client, source, "q")["two"]
    assert one["expectations"] == {"expected_response": "new", "keep": 1, "ok": True, "score": 2.5}
    assert one["outputs"] == "out 1"
    assert one["source"] == {"source_type": "DOCUMENT", "source_data": {"doc": "d1"}}
    assert one["tags"] == {
        "own": "tag", SESSION_TAG: sid, DISAGREE + "ok": '{"adam":false,"zoe":true}',
        DISAGREE + "score": '{"adam":4,"zoe":1}',
    }  # fmt: skip
    assert two["expectations"] == {"ok": False, "score": 7.5, "expected_response": "x"}

    # Into another dataset: new records with the records' inputs, outputs, expectations and source.
    other = client.create_dataset("other", experiment_ids=[exp])["dataset_id"]
    copied = sync(client, sid, other)
    assert (copied["merge"]["created_count"], copied["merge"]["version"], copied["merge"]["num_records"]) == (2, 1, 2)
    new_one = records_by_input(client, other, "q")["one"]
    assert new_one["expectations"] == one["expectations"]
    assert new_one["outputs"] == "out 1"
    assert new_one["source"] == one["source"]
    assert new_one["tags"] == {k: v for k, v in one["tags"].items() if k != "own"}
    assert records_by_input(client, other, "q")["two"]["source"]["source_type"] == "CODE"  # as stored
    # And again: nothing moves in either dataset.
    assert sync(client, sid, other)["merge"]["version"] == 1
    assert sync(client, sid)["merge"]["version"] == 2
    assert client.get_dataset(source)["version"] == 2

    # A record deleted since: the sync fails, and writes nothing.
    client.delete_records(source, [record_ids[1]])
    before = snapshot(database, *DATASET_TABLES)
    err = expect_error(grpc.StatusCode.NOT_FOUND, "DATASET_RECORD_NOT_FOUND", lambda: sync(client, sid, other))
    assert err.metadata["dataset_record_id"] == record_ids[1]
    assert snapshot(database, *DATASET_TABLES) == before


def test_sync_without_completed_items_writes_nothing(client: Client, database: Database) -> None:
    exp = client.create_experiment("sync-empty")["experiment_id"]
    ok = client.create_label_schema(exp, "ok", type="expectation", pass_fail={})["schema_id"]
    ds = client.create_dataset("target", experiment_ids=[exp])["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": 1}}])
    sid = client.create_labeling_session(exp, "s", [ok], raters_per_item=2, dataset_id=ds)["labeling_session_id"]
    trace = log_trace(client, exp, {"q": 2}, None)
    (item,) = client.add_items(sid, trace_ids=[trace])["items"]
    client.submit_labels(sid, item["item_id"], "r1", {ok: True})  # IN_PROGRESS only
    before = snapshot(database, *DATASET_TABLES)
    done = sync(client, sid)
    assert (done["items"], done["disagreements"]) == (0, 0)
    dataset = client.get_dataset(ds)
    merge = done["merge"]
    assert (merge["version"], merge["num_records"], merge["digest"]) == (1, 1, dataset["digest"])
    assert (merge["created_count"], merge["updated_count"], merge["unchanged_count"], merge["results"]) == (0, 0, 0, [])
    assert snapshot(database, *DATASET_TABLES) == before


def test_sync_errors_write_nothing(client: Client, database: Database) -> None:
    exp = client.create_experiment("sync-errors")["experiment_id"]
    ok = client.create_label_schema(exp, "ok", type="expectation", pass_fail={})["schema_id"]
    ds = client.create_dataset("target", experiment_ids=[exp])["dataset_id"]
    no_dataset = client.create_labeling_session(exp, "no dataset", [ok])["labeling_session_id"]
    trace = log_trace(client, exp, {"q": 1}, "out")
    (item,) = client.add_items(no_dataset, trace_ids=[trace])["items"]
    client.submit_labels(no_dataset, item["item_id"], "r1", {ok: True})  # COMPLETED (N = 1)
    gone = client.create_dataset("gone", experiment_ids=[exp])["dataset_id"]
    with_gone = client.create_labeling_session(exp, "gone", [ok], dataset_id=gone)["labeling_session_id"]
    client.delete_dataset(gone)
    before = snapshot(database, *DATASET_TABLES)

    invalid, nf, fp = grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND, grpc.StatusCode.FAILED_PRECONDITION
    expect_error(invalid, "INVALID_FIELD", lambda: sync(client, ""), "labeling_session_id")
    expect_error(invalid, "INVALID_FIELD", lambda: sync(client, "lbs-xyz", ds), "labeling_session_id")
    expect_error(invalid, "INVALID_FIELD", lambda: sync(client, no_dataset, "d-123"), "dataset_id")
    expect_error(invalid, "INVALID_FIELD", lambda: sync(client, no_dataset, ds.upper()), "dataset_id")
    err = expect_error(nf, "LABELING_SESSION_NOT_FOUND", lambda: sync(client, MISSING_SESSION, ds))
    assert err.metadata["labeling_session_id"] == MISSING_SESSION
    err = expect_error(fp, "NO_DATASET", lambda: sync(client, no_dataset))
    assert err.metadata["labeling_session_id"] == no_dataset
    err = expect_error(nf, "DATASET_NOT_FOUND", lambda: sync(client, no_dataset, MISSING_DATASET))
    assert err.metadata["dataset_id"] == MISSING_DATASET
    err = expect_error(nf, "DATASET_NOT_FOUND", lambda: sync(client, with_gone))  # the session's, deleted since
    assert err.metadata["dataset_id"] == gone
    assert snapshot(database, *DATASET_TABLES) == before

    # A trace whose root span has no inputs cannot become a record (as in CreateRecordsFromTraces).
    bare = client.start_trace(exp)["trace_id"]
    no_inputs = client.create_labeling_session(exp, "bare", [ok], dataset_id=ds)["labeling_session_id"]
    (bare_item,) = client.add_items(no_inputs, trace_ids=[trace, bare])["items"][1:]
    client.submit_labels(no_inputs, bare_item["item_id"], "r1", {ok: False})
    before = snapshot(database, *DATASET_TABLES)
    err = expect_error(fp, "TRACE_HAS_NO_INPUTS", lambda: sync(client, no_inputs))
    assert err.metadata["trace_id"] == bare
    assert snapshot(database, *DATASET_TABLES) == before

    # The request's dataset wins over having none.
    assert sync(client, no_dataset, ds)["merge"]["created_count"] == 1


def test_disagreement_tag_limits() -> None:
    # The key: a schema name too long for a tag key is cut and made unique by a hash.
    assert disagreement_key("tone") == DISAGREE + "tone"
    long_a, long_b = "n" * 240 + "a", "n" * 240 + "b"
    key_a, key_b = disagreement_key(long_a), disagreement_key(long_b)
    assert len(key_a) == len(key_b) == limits.TAG_KEY_MAX and key_a != key_b
    # The value: JSON within the tag value limit, values clipped first, then raters dropped.
    small = [("b", 2), ("a", 1)]
    assert disagreement_value(small) == '{"a":1,"b":2}'
    texts = [(f"rater-{i}", "t" * 5_000) for i in range(3)]
    clipped = json.loads(disagreement_value(texts))
    assert len(disagreement_value(texts)) <= limits.TAG_VALUE_MAX
    assert sorted(clipped) == ["rater-0", "rater-1", "rater-2"]
    assert all(value.endswith("…") and len(value) < 5_000 for value in clipped.values())
    crowd = [(f"{i:03d}-" + "r" * 240, "x") for i in range(100)]
    shown = json.loads(disagreement_value(crowd))
    assert len(disagreement_value(crowd)) <= limits.TAG_VALUE_MAX
    assert shown["…"] == f"{100 - (len(shown) - 1)} more raters"
    assert sorted(k for k in shown if k != "…") == sorted(r for r, _ in crowd)[: len(shown) - 1]
