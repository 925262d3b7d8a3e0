"""LabelingService sessions through the real server (SPEC §8.2): create, get, list, update,
delete, progress counts.

Items, claims and submissions are in ``test_labeling_items.py``, rejected input in
``test_labeling_bad_input.py``.
"""

from __future__ import annotations

import datetime as dt

import grpc
import pytest

from mlgenai.client import Client
from mlgenai.v1 import labeling_service_pb2 as pb, labeling_session_pb2 as spb
from store.uow import Database
from tests.api.labeling_support import (
    MISSING_SESSION,
    Setup,
    expire_leases,
    make_schema,
    make_session,
    rows,
    setup,
)
from tests.helpers import count_rows, expect_error

NF = grpc.StatusCode.NOT_FOUND
FP = grpc.StatusCode.FAILED_PRECONDITION
EXISTS = grpc.StatusCode.ALREADY_EXISTS


@pytest.fixture
def s(client: Client) -> Setup:
    return setup(client)


def now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# -- create / get ----------------------------------------------------------------------------


def test_create_returns_every_field(client: Client, s: Setup) -> None:
    dataset = client.create_dataset("golden", experiment_ids=[s.exp])["dataset_id"]
    before = now()
    session = client.create_labeling_session(
        s.exp,
        "review",
        s.schemas,
        raters_per_item=3,
        instructions="be kind",
        assigned_users=["alice", "bob", "carol"],
        dataset_id=dataset,
        lease_duration=dt.timedelta(minutes=5),
    )
    after = now()
    sid = session["labeling_session_id"]
    assert sid.startswith("lbs-") and len(sid) == 36 and int(sid[4:], 16) >= 0 and sid == sid.lower()
    assert session["experiment_id"] == s.exp
    assert session["name"] == "review"
    assert session["instructions"] == "be kind"
    assert session["label_schema_ids"] == s.schemas
    assert session["assigned_users"] == ["alice", "bob", "carol"]
    assert session["raters_per_item"] == 3
    assert session["dataset_id"] == dataset
    assert session["state"] == "OPEN"
    assert session["lease_duration"] == dt.timedelta(minutes=5)
    assert before - dt.timedelta(seconds=1) <= session["create_time"] <= after
    assert session["update_time"] == session["create_time"]
    assert session["progress"] == {
        "total_items": 0,
        "pending_items": 0,
        "in_progress_items": 0,
        "completed_items": 0,
        "skipped_items": 0,
        "submissions": 0,
    }
    assert client.get_labeling_session(sid) == session


def test_create_defaults(client: Client, s: Setup) -> None:
    session = client.create_labeling_session(s.exp, "plain", [s.good])
    assert session["lease_duration"] == dt.timedelta(minutes=10)
    assert session["raters_per_item"] == 1
    assert session["assigned_users"] == [] and session["dataset_id"] == "" and session["instructions"] == ""


def test_schema_order_is_kept(client: Client, s: Setup) -> None:
    session = client.create_labeling_session(s.exp, "reversed", [s.score, s.good])
    assert client.get_labeling_session(session["labeling_session_id"])["label_schema_ids"] == [s.score, s.good]


def test_names_are_unique_per_experiment(client: Client, s: Setup) -> None:
    client.create_labeling_session(s.exp, "review", s.schemas)
    expect_error(
        EXISTS, "LABELING_SESSION_ALREADY_EXISTS", lambda: client.create_labeling_session(s.exp, "review", s.schemas)
    )
    other = client.create_experiment("other")["experiment_id"]
    schema = make_schema(client, other, "correct")
    assert client.create_labeling_session(other, "review", [schema])["name"] == "review"


def test_schemas_of_another_experiment_are_not_found(client: Client, s: Setup, database: Database) -> None:
    other = client.create_experiment("other")["experiment_id"]
    foreign = make_schema(client, other, "foreign")
    expect_error(NF, "LABEL_SCHEMA_NOT_FOUND", lambda: client.create_labeling_session(s.exp, "x", [s.good, foreign]))
    assert count_rows(database, "labeling_sessions") == 0


def test_missing_experiment_schema_dataset(client: Client, s: Setup, database: Database) -> None:
    expect_error(NF, "EXPERIMENT_NOT_FOUND", lambda: client.create_labeling_session("12345", "x", s.schemas))
    expect_error(NF, "LABEL_SCHEMA_NOT_FOUND", lambda: client.create_labeling_session(s.exp, "x", ["ls-" + "0" * 32]))
    expect_error(
        NF,
        "DATASET_NOT_FOUND",
        lambda: client.create_labeling_session(s.exp, "x", s.schemas, dataset_id="d-" + "0" * 32),
    )
    assert count_rows(database, "labeling_sessions") == 0


def test_deleted_experiment_refuses_sessions(client: Client, s: Setup, database: Database) -> None:
    session = make_session(client, s)
    client.delete_experiment(s.exp)
    expect_error(FP, "EXPERIMENT_DELETED", lambda: client.create_labeling_session(s.exp, "x", s.schemas))
    expect_error(
        FP, "EXPERIMENT_DELETED", lambda: client.update_labeling_session(session["labeling_session_id"], name="y")
    )
    assert client.get_labeling_session(session["labeling_session_id"])["name"] == "review"
    assert count_rows(database, "labeling_sessions") == 1


def test_get_missing(client: Client) -> None:
    expect_error(NF, "LABELING_SESSION_NOT_FOUND", lambda: client.get_labeling_session(MISSING_SESSION))


# -- list ------------------------------------------------------------------------------------


def test_list_newest_first_across_pages(client: Client, s: Setup) -> None:
    made = [client.create_labeling_session(s.exp, f"s{i}", s.schemas)["labeling_session_id"] for i in range(7)]
    other = client.create_experiment("other")["experiment_id"]
    client.create_labeling_session(other, "elsewhere", [make_schema(client, other, "x")])
    listed = [x["labeling_session_id"] for x in client.list_labeling_sessions(s.exp, page_size=3)]
    expected = sorted(made, key=lambda i: (-int(client.get_labeling_session(i)["create_time"].timestamp() * 1000), i))
    assert listed == expected
    assert all(x["label_schema_ids"] == s.schemas for x in client.list_labeling_sessions(s.exp))


def test_list_of_missing_experiment(client: Client) -> None:
    expect_error(NF, "EXPERIMENT_NOT_FOUND", lambda: list(client.list_labeling_sessions("424242")))


def test_list_shows_progress(client: Client, s: Setup) -> None:
    session = make_session(client, s, n=2)
    sid = session["labeling_session_id"]
    claim = client.claim_next_item(sid, "alice")
    assert claim is not None
    client.submit_labels(sid, claim["item"]["item_id"], "alice", s.labels())
    (listed,) = client.list_labeling_sessions(s.exp)
    assert listed["progress"] == client.get_labeling_session(sid)["progress"]
    assert listed["progress"]["in_progress_items"] == 1 and listed["progress"]["submissions"] == 1


# -- progress --------------------------------------------------------------------------------


def test_progress_counts_every_state(client: Client, s: Setup, database: Database) -> None:
    session = make_session(client, s, n=2, assigned_users=["alice", "bob"])
    sid = session["labeling_session_id"]
    # item 0: completed by alice and bob; item 1: alice submitted; item 2: leased to bob;
    # item 3: skipped by alice (2 assigned, needs 2): SKIPPED; item 4: pending.
    a = client.claim_next_item(sid, "alice")["item"]["item_id"]  # type: ignore[index]
    client.submit_labels(sid, a, "alice", s.labels())
    b = client.claim_next_item(sid, "bob")["item"]["item_id"]  # type: ignore[index]
    assert b == a
    client.submit_labels(sid, b, "bob", s.labels())
    a1 = client.claim_next_item(sid, "alice")["item"]["item_id"]  # type: ignore[index]
    client.submit_labels(sid, a1, "alice", s.labels())
    b2 = client.claim_next_item(sid, "bob")["item"]["item_id"]  # type: ignore[index]
    assert b2 == a1  # bob is offered the item alice started first
    a2 = client.claim_next_item(sid, "alice")["item"]["item_id"]  # type: ignore[index]
    skipped = client.skip_item(sid, a2, "alice")
    assert skipped["state"] == "SKIPPED"
    progress = client.get_labeling_session(sid)["progress"]
    assert progress == {
        "total_items": 5,
        "pending_items": 2,
        "in_progress_items": 1,
        "completed_items": 1,
        "skipped_items": 1,
        "submissions": 3,
    }
    expire_leases(database)
    progress = client.get_labeling_session(sid)["progress"]
    assert (progress["pending_items"], progress["in_progress_items"]) == (2, 1)  # item 1 has a submission


# -- update ----------------------------------------------------------------------------------


def test_update_each_field(client: Client, s: Setup) -> None:
    session = make_session(client, s, add=0)
    sid = session["labeling_session_id"]
    dataset = client.create_dataset("golden", experiment_ids=[s.exp])["dataset_id"]
    updated = client.update_labeling_session(
        sid,
        name="renamed",
        instructions="new",
        assigned_users=["zed"],
        lease_duration=60,
        dataset_id=dataset,
        label_schema_ids=[s.score],
        raters_per_item=4,
    )
    assert updated["name"] == "renamed" and updated["instructions"] == "new"
    assert updated["assigned_users"] == ["zed"] and updated["lease_duration"] == dt.timedelta(seconds=60)
    assert updated["dataset_id"] == dataset and updated["label_schema_ids"] == [s.score]
    assert updated["raters_per_item"] == 4
    assert updated["update_time"] >= session["update_time"]
    assert client.get_labeling_session(sid) == updated
    cleared = client.update_labeling_session(sid, dataset_id="", assigned_users=[])
    assert cleared["dataset_id"] == "" and cleared["assigned_users"] == []


def test_close_and_reopen(client: Client, s: Setup) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    assert client.close_labeling_session(sid)["state"] == "CLOSED"
    expect_error(FP, "SESSION_CLOSED", lambda: client.claim_next_item(sid, "alice"))
    assert client.reopen_labeling_session(sid)["state"] == "OPEN"
    assert client.claim_next_item(sid, "alice") is not None


def test_rename_to_a_taken_name(client: Client, s: Setup) -> None:
    client.create_labeling_session(s.exp, "taken", s.schemas)
    sid = client.create_labeling_session(s.exp, "mine", s.schemas)["labeling_session_id"]
    expect_error(EXISTS, "LABELING_SESSION_ALREADY_EXISTS", lambda: client.update_labeling_session(sid, name="taken"))
    assert client.update_labeling_session(sid, name="mine")["name"] == "mine"


def test_schemas_and_raters_are_fixed_after_a_submission(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=2)["labeling_session_id"]
    assert client.update_labeling_session(sid, raters_per_item=3)["raters_per_item"] == 3
    claim = client.claim_next_item(sid, "alice")
    client.submit_labels(sid, claim["item"]["item_id"], "alice", s.labels())  # type: ignore[index]
    expect_error(FP, "SESSION_HAS_SUBMISSIONS", lambda: client.update_labeling_session(sid, raters_per_item=1))
    expect_error(FP, "SESSION_HAS_SUBMISSIONS", lambda: client.update_labeling_session(sid, label_schema_ids=[s.good]))
    # the same values are no change
    same = client.update_labeling_session(sid, raters_per_item=3, label_schema_ids=s.schemas, name="still")
    assert same["raters_per_item"] == 3 and same["name"] == "still"


def test_update_missing_refs(client: Client, s: Setup) -> None:
    sid = make_session(client, s, add=0)["labeling_session_id"]
    expect_error(NF, "LABELING_SESSION_NOT_FOUND", lambda: client.update_labeling_session(MISSING_SESSION, name="x"))
    expect_error(NF, "DATASET_NOT_FOUND", lambda: client.update_labeling_session(sid, dataset_id="d-" + "0" * 32))
    expect_error(
        NF, "LABEL_SCHEMA_NOT_FOUND", lambda: client.update_labeling_session(sid, label_schema_ids=["ls-" + "1" * 32])
    )
    assert client.get_labeling_session(sid)["label_schema_ids"] == s.schemas


def test_assigned_users_change_recomputes_skipped(client: Client, s: Setup) -> None:
    sid = make_session(client, s, n=2, add=1, assigned_users=["alice", "bob"])["labeling_session_id"]
    item = client.claim_next_item(sid, "alice")["item"]["item_id"]  # type: ignore[index]
    assert client.skip_item(sid, item, "alice")["state"] == "SKIPPED"
    client.update_labeling_session(sid, assigned_users=["alice", "bob", "carol"])
    (listed,) = client.list_items(sid)
    assert listed["state"] == "PENDING" and listed["skipped_by"] == ["alice"]
    assert client.claim_next_item(sid, "carol") is not None
    client.update_labeling_session(sid, assigned_users=["alice", "bob"])
    assert next(client.list_items(sid))["state"] == "SKIPPED"
    assert client.claim_next_item(sid, "bob") is None
    client.update_labeling_session(sid, assigned_users=[])
    assert next(client.list_items(sid))["state"] == "PENDING"


def test_unassigned_raters_lose_their_leases(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s, add=1, assigned_users=["alice", "bob"])["labeling_session_id"]
    assert client.claim_next_item(sid, "alice") is not None
    assert client.claim_next_item(sid, "bob") is None  # N = 1, leased to alice
    client.update_labeling_session(sid, assigned_users=["bob"])
    assert client.claim_next_item(sid, "bob") is not None
    assert rows(database, "SELECT rater FROM labeling_leases") == [("bob",)]


# -- delete ----------------------------------------------------------------------------------


def test_delete_cascades_and_keeps_assessments(client: Client, s: Setup, database: Database) -> None:
    sid = make_session(client, s)["labeling_session_id"]
    claim = client.claim_next_item(sid, "alice")
    client.submit_labels(sid, claim["item"]["item_id"], "alice", s.labels())  # type: ignore[index]
    client.claim_next_item(sid, "alice")
    client.delete_labeling_session(sid)
    for table in ("labeling_sessions", "labeling_session_schemas", "labeling_items", "labeling_item_raters",
                  "labeling_labels", "labeling_leases"):  # fmt: skip
        assert count_rows(database, table) == 0, table
    assert count_rows(database, "assessments") == 2
    expect_error(NF, "LABELING_SESSION_NOT_FOUND", lambda: client.get_labeling_session(sid))
    expect_error(NF, "LABELING_SESSION_NOT_FOUND", lambda: client.delete_labeling_session(sid))
    client.delete_labeling_session(sid, allow_missing=True)
    # the schemas are free to go now
    assert count_rows(database, "label_schemas") == 2


def test_create_with_a_request_id_is_idempotent(client: Client, database: Database, s: Setup) -> None:
    session = spb.LabelingSession(experiment_id=s.exp, name="once", label_schema_ids=s.schemas, raters_per_item=2)
    request = pb.CreateLabelingSessionRequest(
        labeling_session=session, request_id="0b6c8f64-4f0e-4c51-9d1e-5f0c8f5e2a11"
    )
    first = client.labeling.CreateLabelingSession(request)
    assert client.labeling.CreateLabelingSession(request) == first
    assert count_rows(database, "labeling_sessions") == 1
    other = pb.CreateLabelingSessionRequest()
    other.CopyFrom(request)
    other.labeling_session.name = "twice"
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT,
        "REQUEST_ID_REUSED",
        lambda: client.labeling.CreateLabelingSession(other),
    )
    assert count_rows(database, "labeling_sessions") == 1
