"""LabelingService items through the real server (SPEC §8.3): AddItems, RemoveItems, ListItems,
ClaimNextItem, SubmitLabels, SkipItem, ListSubmissions — leases, capacity, completion,
resubmission overrides, skips.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from mlgenai.client import Client
from store.uow import Database
from tests.api.labeling_support import (
    MISSING_ITEM,
    Setup,
    claim_and_submit,
    expire_leases,
    human_assessments,
    item_ids,
    items,
    make_schema,
    make_session,
    make_traces,
    rater_rows,
    rows,
    setup,
    stored_item,
)
from tests.helpers import count_rows, expect_error

NF = grpc.StatusCode.NOT_FOUND
FP = grpc.StatusCode.FAILED_PRECONDITION


@pytest.fixture
def s(client: Client) -> Setup:
    return setup(client)


def claim_id(client: Client, sid: str, rater: str, **options: object) -> str | None:
    claim = client.claim_next_item(sid, rater, **options)  # type: ignore[arg-type]
    return None if claim is None else str(claim["item"]["item_id"])


# -- AddItems / ListItems / RemoveItems ------------------------------------------------------


def test_add_items_in_order_without_duplicates(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, add=0)["labeling_session_id"]
    first = client.add_items(sid, trace_ids=s.traces[:3])
    assert first["added"] == 3
    assert [i["source"]["trace_id"] for i in first["items"]] == s.traces[:3]
    assert all(i["state"] == "PENDING" and i["labeling_session_id"] == sid for i in first["items"])
    assert all(i["item_id"].startswith("lsi-") and len(i["item_id"]) == 36 for i in first["items"])
    # one already there, one twice in the request, two new
    again = client.add_items(sid, trace_ids=[s.traces[1], s.traces[3], s.traces[3], s.traces[4]])
    assert again["added"] == 2
    ids = item_ids(again["items"])
    assert ids[0] == first["items"][1]["item_id"] and ids[1] == ids[2]
    listed = items(client, sid)
    assert [i["source"]["trace_id"] for i in listed] == s.traces
    assert [r.position for r in rows(database, "SELECT position FROM labeling_items ORDER BY position")] == list(
        range(5)
    )
    assert rows(database, "SELECT next_position FROM labeling_sessions") == [(5,)]


def test_existing_items_come_back_with_their_state(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=2, add=1)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    client.submit_labels(sid, item, "alice", s.labels())  # type: ignore[arg-type]
    back = client.add_items(sid, trace_ids=[s.traces[0]])
    assert back["added"] == 0
    assert back["items"][0]["state"] == "IN_PROGRESS" and back["items"][0]["raters"] == ["alice"]


def test_dataset_record_items(client: Client, s: Setup, database: Database) -> None:
    ds = client.create_dataset("golden", experiment_ids=[s.exp])["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": "a"}}, {"inputs": {"q": "b"}}])
    records = [r["dataset_record_id"] for r in client.iter_records(ds)]
    sid = make_session(client, s, add=1)["labeling_session_id"]
    added = client.add_items(sid, records=[(ds, records[0]), (ds, records[1]), (ds, records[0])])
    assert added["added"] == 2
    assert added["items"][0]["source"]["dataset_record"] == {"dataset_id": ds, "record_id": records[0]}
    assert added["items"][0]["source"]["trace_id"] is None
    # labels on a record item are stored without assessments
    claim_id(client, sid, "alice")  # the trace item first
    record_item = claim_id(client, sid, "bob")
    assert record_item == added["items"][0]["item_id"]
    done = client.submit_labels(sid, record_item, "bob", s.labels(good=False, score=7))  # type: ignore[arg-type]
    assert done["submission"]["assessment_ids"] == [] and done["item"]["state"] == "COMPLETED"
    assert count_rows(database, "assessments") == 0
    stored = rows(database, "SELECT schema_id, value, assessment_id FROM labeling_labels ORDER BY schema_id")
    assert sorted((r.schema_id, r.value, r.assessment_id) for r in stored) == sorted(
        [(s.good, "false", None), (s.score, "7", None)]
    )


def test_deleted_record_is_not_found(client: Client, s: Setup) -> None:
    ds = client.create_dataset("golden", experiment_ids=[s.exp])["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": "a"}}])
    (record,) = [r["dataset_record_id"] for r in client.iter_records(ds)]
    client.delete_records(ds, [record])
    sid = make_session(client, s, add=0)["labeling_session_id"]
    expect_error(NF, "DATASET_RECORD_NOT_FOUND", lambda: client.add_items(sid, records=[(ds, record)]))
    expect_error(NF, "DATASET_NOT_FOUND", lambda: client.add_items(sid, records=[("d-" + "0" * 32, record)]))


def test_list_items_pages_and_filters(client: Client, s: Setup) -> None:
    more = make_traces(client, s.exp, 7)
    sid = make_session(client, s, n=2)["labeling_session_id"]
    client.add_items(sid, trace_ids=more)
    every = items(client, sid)
    assert len(every) == 12
    assert item_ids(client.list_items(sid, page_size=5)) == item_ids(every)
    a = claim_id(client, sid, "alice")
    client.submit_labels(sid, a, "alice", s.labels())  # type: ignore[arg-type]
    b = claim_id(client, sid, "bob")
    assert b == a
    client.submit_labels(sid, b, "bob", s.labels())  # type: ignore[arg-type]
    leased = claim_id(client, sid, "carol")
    started = claim_id(client, sid, "dave")
    assert started == leased
    client.submit_labels(sid, started, "dave", s.labels())  # type: ignore[arg-type]
    state = {i["item_id"]: i["state"] for i in items(client, sid)}
    assert state[a] == "COMPLETED" and state[leased] == "IN_PROGRESS"
    assert item_ids(client.list_items(sid, states=["COMPLETED"])) == [a]
    assert item_ids(client.list_items(sid, states=["IN_PROGRESS"])) == [leased]
    pending = item_ids(client.list_items(sid, states=["PENDING"], page_size=4))
    assert pending == [i for i in item_ids(every) if i not in (a, leased)]
    assert item_ids(client.list_items(sid, states=["COMPLETED", "IN_PROGRESS"])) == item_ids(every)[:2]
    assert item_ids(client.list_items(sid, rater="bob")) == [a]
    assert item_ids(client.list_items(sid, rater="dave")) == [leased]
    assert item_ids(client.list_items(sid, rater="carol")) == []  # a lease is no submission


def test_remove_items_all_or_nothing(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, n=2)["labeling_session_id"]
    ids = item_ids(items(client, sid))
    a = claim_id(client, sid, "alice")
    client.submit_labels(sid, a, "alice", s.labels())  # type: ignore[arg-type]
    claim_id(client, sid, "bob")
    expect_error(NF, "ITEM_NOT_FOUND", lambda: client.remove_items(sid, [ids[1], MISSING_ITEM]))
    assert count_rows(database, "labeling_items") == 5
    other = make_session(client, s, name="other")["labeling_session_id"]
    foreign = items(client, other)[0]["item_id"]
    expect_error(NF, "ITEM_NOT_FOUND", lambda: client.remove_items(sid, [foreign]))
    assert client.remove_items(sid, [ids[0], ids[1], ids[0]]) == 2
    assert item_ids(items(client, sid)) == ids[2:]
    assert count_rows(database, "labeling_item_raters") == 0 and count_rows(database, "labeling_leases") == 0
    assert count_rows(database, "labeling_labels") == 0
    assert count_rows(database, "assessments", "source_type = 'HUMAN'") == 2  # assessments stay
    progress = client.get_labeling_session(sid)["progress"]
    assert progress["total_items"] == 3 and progress["submissions"] == 0


def test_items_go_with_their_trace(client: Client, s: Setup) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    client.delete_traces(s.exp, trace_ids=s.traces[:2])
    assert [i["source"]["trace_id"] for i in items(client, sid)] == s.traces[2:]


def test_closed_session_refuses_item_writes(client: Client, s: Setup) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    client.close_labeling_session(sid)
    expect_error(FP, "SESSION_CLOSED", lambda: client.add_items(sid, trace_ids=make_traces(client, s.exp, 1)))
    expect_error(FP, "SESSION_CLOSED", lambda: client.remove_items(sid, [item]))  # type: ignore[list-item]
    expect_error(FP, "SESSION_CLOSED", lambda: client.claim_next_item(sid, "alice"))
    expect_error(FP, "SESSION_CLOSED", lambda: client.submit_labels(sid, item, "alice", s.labels()))  # type: ignore[arg-type]
    expect_error(FP, "SESSION_CLOSED", lambda: client.skip_item(sid, item, "alice"))  # type: ignore[arg-type]
    assert len(items(client, sid)) == 5  # reads still work


# -- ClaimNextItem ---------------------------------------------------------------------------


def test_claim_returns_item_and_lease(client: Client, s: Setup) -> None:
    sid = make_session(client, s, lease_duration=120)["labeling_session_id"]
    before = dt.datetime.now(dt.UTC)
    claim = client.claim_next_item(sid, "alice")
    assert claim is not None
    item, lease = claim["item"], claim["lease"]
    assert item["source"]["trace_id"] == s.traces[0] and item["state"] == "IN_PROGRESS"
    assert lease["rater"] == "alice"
    assert before + dt.timedelta(seconds=119) <= lease["expire_time"] <= before + dt.timedelta(seconds=122)
    assert item["leases"] == [lease]
    shorter = client.claim_next_item(sid, "bob", lease_duration=dt.timedelta(seconds=30))
    assert shorter["lease"]["expire_time"] < lease["expire_time"]  # type: ignore[index]


def test_claim_renews_own_lease(client: Client, s: Setup) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    first = client.claim_next_item(sid, "alice", lease_duration=30)
    second = client.claim_next_item(sid, "alice", lease_duration=300)
    assert first["item"]["item_id"] == second["item"]["item_id"]  # type: ignore[index]
    assert second["lease"]["expire_time"] > first["lease"]["expire_time"]  # type: ignore[index]
    assert second["item"]["leases"] == [second["lease"]]  # type: ignore[index]


def test_capacity_n_leases_per_item(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=2)["labeling_session_id"]
    got = [claim_id(client, sid, r) for r in ("a", "b", "c", "d", "e")]
    assert got[0] == got[1] and got[2] == got[3] and got[0] != got[2] and got[4] not in got[:4]
    assert item_ids(items(client, sid))[:3] == [got[0], got[2], got[4]]


def test_expired_leases_free_the_slot(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, add=1)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    assert claim_id(client, sid, "bob") is None
    expire_leases(database)
    assert items(client, sid)[0]["state"] == "PENDING" and items(client, sid)[0]["leases"] == []
    assert claim_id(client, sid, "bob") == item
    # alice's lease lapsed and bob holds the slot now
    expect_error(FP, "NO_FREE_SLOT", lambda: client.submit_labels(sid, item, "alice", s.labels()))  # type: ignore[arg-type]
    # alice's expired lease is not renewed: she gets nothing (the item is leased to bob)
    assert claim_id(client, sid, "alice") is None


def test_n_raters_complete_an_item_and_it_is_not_offered_again(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, n=3, add=2)["labeling_session_id"]
    first = s.traces[0]
    for rater in ("r1", "r2", "r3"):
        done = claim_and_submit(client, sid, rater, s.labels())
        assert done is not None and done["item"]["source"]["trace_id"] == first
    assert done["item"]["state"] == "COMPLETED" and done["item"]["raters"] == ["r1", "r2", "r3"]
    assert client.claim_next_item(sid, "r4")["item"]["source"]["trace_id"] == s.traces[1]  # type: ignore[index]
    item = stored_item(database, done["item"]["item_id"])
    assert (item.state, item.submitted) == ("completed", 3)
    expect_error(FP, "ITEM_COMPLETED", lambda: client.submit_labels(sid, item.item_id, "r5", s.labels()))


def test_a_rater_never_gets_the_same_item_twice(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=3)["labeling_session_id"]
    seen = []
    while (done := claim_and_submit(client, sid, "alice", s.labels())) is not None:
        seen.append(done["item"]["item_id"])
    assert len(seen) == len(set(seen)) == 5
    assert client.claim_next_item(sid, "alice") is None


def test_assigned_users_only(client: Client, s: Setup) -> None:
    sid = make_session(client, s, assigned_users=["alice"])["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    expect_error(FP, "RATER_NOT_ASSIGNED", lambda: client.claim_next_item(sid, "mallory"))
    expect_error(FP, "RATER_NOT_ASSIGNED", lambda: client.submit_labels(sid, item, "mallory", s.labels()))  # type: ignore[arg-type]
    expect_error(FP, "RATER_NOT_ASSIGNED", lambda: client.skip_item(sid, item, "mallory"))  # type: ignore[arg-type]


def test_empty_session_claims_nothing(client: Client, s: Setup) -> None:
    sid = make_session(client, s, add=0)["labeling_session_id"]
    assert client.claim_next_item(sid, "alice") is None


# -- SubmitLabels ----------------------------------------------------------------------------


def test_submit_writes_human_assessments(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, n=2)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    done = client.submit_labels(sid, item, "alice", {s.score: 7.5, s.good: True}, comments={s.good: "fine"})  # type: ignore[arg-type]
    sub = done["submission"]
    assert sub["item_id"] == item and sub["rater"] == "alice"
    assert [(x["schema_id"], x["value"], x["comment"]) for x in sub["labels"]] == [
        (s.good, True, "fine"),
        (s.score, 7.5, ""),
    ]
    assert len(sub["assessment_ids"]) == 2 and sub["submit_time"] is not None
    assert done["item"]["state"] == "IN_PROGRESS" and done["item"]["raters"] == ["alice"]
    assert done["item"]["leases"] == []  # the lease is released
    found = human_assessments(database, s.traces[0])
    assert sorted((a.name, a.kind, a.source_id, a.rationale) for a in found) == [
        ("correct", "feedback", "alice", "fine"),
        ("score", "expectation", "alice", None),
    ]
    assert sorted(a.assessment_id for a in found) == sorted(sub["assessment_ids"])
    assert count_rows(database, "labeling_leases") == 0
    assert rater_rows(database, item) == {"alice": "submitted"}  # type: ignore[arg-type]
    trace = client.get_trace(s.traces[0], include_spans=False)
    assert {a["name"] for a in trace["info"]["assessments"]} == {"correct", "score"}


def test_resubmission_overrides(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, n=2)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    first = client.submit_labels(sid, item, "alice", s.labels(good=True, score=1))  # type: ignore[arg-type]
    second = client.submit_labels(sid, item, "alice", s.labels(good=False, score=9))  # type: ignore[arg-type]
    third = client.submit_labels(sid, item, "alice", s.labels(good=False, score=4))  # type: ignore[arg-type]
    assert third["item"]["raters"] == ["alice"] and third["item"]["state"] == "IN_PROGRESS"
    valid = human_assessments(database, s.traces[0])
    assert sorted((a.name, a.source_id) for a in valid) == [("correct", "alice"), ("score", "alice")]
    assert sorted(a.assessment_id for a in valid) == sorted(third["submission"]["assessment_ids"])
    values = {a.name: a.value for a in valid}
    assert values["correct"] in (False, "false") and values["score"] in (4, 4.0, "4.0", "4")
    every = human_assessments(database, s.traces[0], valid_only=False)
    assert len(every) == 6
    overrides = {a.assessment_id: a.overrides for a in every}
    for older, newer in ((first, second), (second, third)):
        for old_id, new_id in zip(
            older["submission"]["assessment_ids"], newer["submission"]["assessment_ids"], strict=True
        ):
            assert overrides[new_id] == old_id
    assert stored_item(database, item).submitted == 1  # type: ignore[arg-type]
    assert client.get_labeling_session(sid)["progress"]["submissions"] == 1
    (listed,) = client.list_submissions(sid)
    assert [x["value"] for x in listed["labels"]] == [False, 4]
    assert listed["submit_time"] == third["submission"]["submit_time"]


def test_resubmission_after_completion_and_after_assessment_deleted(
    client: Client, s: Setup, database: Database
) -> None:
    sid = make_session(client, s, n=1)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    first = client.submit_labels(sid, item, "alice", s.labels())  # type: ignore[arg-type]
    assert first["item"]["state"] == "COMPLETED"
    client.delete_assessment(first["submission"]["assessment_ids"][0])
    again = client.submit_labels(sid, item, "alice", s.labels(good=False))  # type: ignore[arg-type]
    assert again["item"]["state"] == "COMPLETED"
    assert len(human_assessments(database, s.traces[0])) == 2


def test_submit_without_claim_takes_a_free_slot(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=1, add=1)["labeling_session_id"]
    item = items(client, sid)[0]["item_id"]
    done = client.submit_labels(sid, item, "alice", s.labels())
    assert done["item"]["state"] == "COMPLETED"


def test_submit_with_no_free_slot(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=1, add=1)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    expect_error(FP, "NO_FREE_SLOT", lambda: client.submit_labels(sid, item, "bob", s.labels()))  # type: ignore[arg-type]
    assert client.submit_labels(sid, item, "alice", s.labels())["item"]["state"] == "COMPLETED"  # type: ignore[arg-type]


def test_submit_to_unknown_item(client: Client, s: Setup) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    expect_error(NF, "ITEM_NOT_FOUND", lambda: client.submit_labels(sid, MISSING_ITEM, "alice", s.labels()))
    other = make_session(client, s, name="other")["labeling_session_id"]
    foreign = items(client, other)[0]["item_id"]
    expect_error(NF, "ITEM_NOT_FOUND", lambda: client.submit_labels(sid, foreign, "alice", s.labels()))


def test_categorical_and_text_schemas(client: Client, s: Setup, database: Database) -> None:
    tone = make_schema(client, s.exp, "tone", kind="categorical", options=["calm", "rude"], multi_select=True)
    note = make_schema(client, s.exp, "note", kind="text", max_length=20)
    sid = client.create_labeling_session(s.exp, "mixed", [tone, note])["labeling_session_id"]
    client.add_items(sid, trace_ids=s.traces[:1])
    item = claim_id(client, sid, "alice")
    done = client.submit_labels(sid, item, "alice", {tone: ["rude", "calm"], note: "meh"})  # type: ignore[arg-type]
    assert [x["value"] for x in done["submission"]["labels"]] == [["rude", "calm"], "meh"]
    assert sorted(a.name for a in human_assessments(database, s.traces[0])) == ["note", "tone"]


# -- SkipItem --------------------------------------------------------------------------------


def test_skip_releases_and_is_not_offered_again(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, n=1, add=2)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    skipped = client.skip_item(sid, item, "alice")  # type: ignore[arg-type]
    assert skipped["skipped_by"] == ["alice"] and skipped["leases"] == []
    assert skipped["state"] == "PENDING"  # no assigned users: never SKIPPED
    assert client.skip_item(sid, item, "alice") == skipped  # type: ignore[arg-type]  # idempotent
    assert claim_id(client, sid, "alice") != item
    assert claim_id(client, sid, "bob") == item
    expect_error(FP, "ITEM_SKIPPED", lambda: client.submit_labels(sid, item, "alice", s.labels()))  # type: ignore[arg-type]
    assert rater_rows(database, item) == {"alice": "skipped"}  # type: ignore[arg-type]


def test_skip_after_submit(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=2, add=1)["labeling_session_id"]
    item = claim_id(client, sid, "alice")
    client.submit_labels(sid, item, "alice", s.labels())  # type: ignore[arg-type]
    expect_error(FP, "ALREADY_SUBMITTED", lambda: client.skip_item(sid, item, "alice"))  # type: ignore[arg-type]


def test_skipped_state_with_assigned_users(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=2, add=1, assigned_users=["a", "b", "c"])["labeling_session_id"]
    item = claim_id(client, sid, "a")
    assert client.skip_item(sid, item, "a")["state"] == "PENDING"  # type: ignore[arg-type]  # b and c remain
    client.submit_labels(sid, item, "b", s.labels())  # type: ignore[arg-type]
    assert client.skip_item(sid, item, "c")["state"] == "SKIPPED"  # type: ignore[arg-type]
    expect_error(FP, "ITEM_SKIPPED", lambda: client.submit_labels(sid, item, "c", s.labels()))  # type: ignore[arg-type]
    assert client.claim_next_item(sid, "a") is None
    progress = client.get_labeling_session(sid)["progress"]
    assert progress["skipped_items"] == 1 and progress["submissions"] == 1


def test_skip_unknown_item(client: Client, s: Setup) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    expect_error(NF, "ITEM_NOT_FOUND", lambda: client.skip_item(sid, MISSING_ITEM, "alice"))


# -- ListSubmissions -------------------------------------------------------------------------


def test_list_submissions_order_filters_pages(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=3)["labeling_session_id"]
    ids = item_ids(items(client, sid))
    for rater in ("zoe", "adam", "mia"):
        for _ in range(2):
            claim_and_submit(client, sid, rater, s.labels())
    listed = list(client.list_submissions(sid, page_size=2))
    assert [(x["item_id"], x["rater"]) for x in listed] == [
        (ids[0], "zoe"), (ids[0], "adam"), (ids[0], "mia"), (ids[1], "zoe"), (ids[1], "adam"), (ids[1], "mia"),
    ]  # fmt: skip
    assert all(len(x["labels"]) == 2 and len(x["assessment_ids"]) == 2 for x in listed)
    assert [x["rater"] for x in client.list_submissions(sid, item_id=ids[1])] == ["zoe", "adam", "mia"]
    assert [x["item_id"] for x in client.list_submissions(sid, rater="adam")] == ids[:2]
    assert list(client.list_submissions(sid, item_id=ids[4])) == []
