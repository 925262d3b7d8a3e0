"""Rejected LabelingService session/item input: the code, the reason, the field, and nothing stored."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
from google.protobuf import duration_pb2, field_mask_pb2

from mlgenai.client import Client, to_value
from mlgenai.v1 import labeling_service_pb2 as pb, labeling_session_pb2 as lpb
from store.uow import Database
from tests.api.labeling_support import (
    MISSING_ITEM,
    MISSING_SCHEMA,
    MISSING_SESSION,
    TABLES,
    Setup,
    items,
    make_schema,
    make_session,
    make_traces,
    setup,
)
from tests.helpers import expect_nothing_written

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NF = grpc.StatusCode.NOT_FOUND
FP = grpc.StatusCode.FAILED_PRECONDITION
MALFORMED_SESSION_IDS = ["", "lbs-123", "lbs-" + "A" * 32, "lsi-" + "0" * 32, "0" * 32, "lbs-" + "0" * 33]


@pytest.fixture
def s(client: Client) -> Setup:
    return setup(client)


@pytest.fixture
def sid(client: Client, s: Setup) -> str:
    return str(make_session(client, s, n=2, assigned_users=["alice", "bob"])["labeling_session_id"])


@pytest.fixture
def item(client: Client, sid: str) -> str:
    claim = client.claim_next_item(sid, "alice")
    assert claim is not None
    return str(claim["item"]["item_id"])


def rejected(
    database: Database, code: grpc.StatusCode, reason: str, call: Callable[[], Any], field: str | None = None
) -> Any:
    return expect_nothing_written(database, TABLES, code, reason, call, field)


def seconds(value: float) -> duration_pb2.Duration:
    out = duration_pb2.Duration()
    out.FromNanoseconds(int(value * 1e9))
    return out


# -- CreateLabelingSession -------------------------------------------------------------------


def create(client: Client, s: Setup, **fields: Any) -> Callable[[], Any]:
    base: dict[str, Any] = {"experiment_id": s.exp, "name": "n", "label_schema_ids": s.schemas, "raters_per_item": 1}
    session = lpb.LabelingSession(**(base | fields))
    return lambda: client.labeling.CreateLabelingSession(pb.CreateLabelingSessionRequest(labeling_session=session))


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"experiment_id": ""}, "experiment_id"),
        ({"experiment_id": "abc"}, "experiment_id"),
        ({"experiment_id": "9" * 20}, "experiment_id"),
        ({"name": ""}, "name"),
        ({"name": "  "}, "name"),
        ({"name": "n" * 251}, "name"),
        ({"name": "a\x00"}, "name"),
        ({"instructions": "i" * 4_001}, "instructions"),
        ({"label_schema_ids": []}, "label_schema_ids"),
        ({"label_schema_ids": ["ls-123"]}, "label_schema_ids[0]"),
        ({"label_schema_ids": [MISSING_SCHEMA, MISSING_SCHEMA]}, "label_schema_ids[1]"),
        ({"label_schema_ids": [f"ls-{i:032x}" for i in range(21)]}, "label_schema_ids"),
        ({"raters_per_item": 0}, "raters_per_item"),
        ({"raters_per_item": -1}, "raters_per_item"),
        ({"raters_per_item": 101}, "raters_per_item"),
        ({"assigned_users": [""]}, "assigned_users[0]"),
        ({"assigned_users": ["u" * 251]}, "assigned_users[0]"),
        ({"assigned_users": ["a", "a"]}, "assigned_users[1]"),
        ({"assigned_users": [f"u{i}" for i in range(101)]}, "assigned_users"),
        ({"dataset_id": "d-1"}, "dataset_id"),
        ({"lease_duration": seconds(9.999)}, "lease_duration"),
        ({"lease_duration": seconds(24 * 3600 + 1)}, "lease_duration"),
        ({"lease_duration": seconds(-60)}, "lease_duration"),
    ],
)
def test_create_invalid_fields(
    client: Client, database: Database, s: Setup, fields: dict[str, Any], field: str
) -> None:
    rejected(database, INVALID, "INVALID_FIELD", create(client, s, **fields), "labeling_session." + field)


def test_create_missing_references(client: Client, database: Database, s: Setup) -> None:
    rejected(database, NF, "EXPERIMENT_NOT_FOUND", create(client, s, experiment_id="777"))
    rejected(database, NF, "LABEL_SCHEMA_NOT_FOUND", create(client, s, label_schema_ids=[s.good, MISSING_SCHEMA]))
    rejected(database, NF, "DATASET_NOT_FOUND", create(client, s, dataset_id="d-" + "0" * 32))
    other = client.create_experiment("other")["experiment_id"]
    foreign = make_schema(client, other, "correct")
    rejected(database, NF, "LABEL_SCHEMA_NOT_FOUND", create(client, s, label_schema_ids=[foreign]))


# -- Get / Delete / List ---------------------------------------------------------------------


@pytest.mark.parametrize("bad", MALFORMED_SESSION_IDS)
def test_malformed_session_ids(client: Client, database: Database, bad: str) -> None:
    calls: list[tuple[Callable[[], Any], str]] = [
        (lambda: client.get_labeling_session(bad), "labeling_session_id"),
        (lambda: client.delete_labeling_session(bad, allow_missing=True), "labeling_session_id"),
        (lambda: client.claim_next_item(bad, "alice"), "labeling_session_id"),
        (lambda: client.add_items(bad, trace_ids=["tr-" + "0" * 32]), "labeling_session_id"),
        (lambda: client.remove_items(bad, [MISSING_ITEM]), "labeling_session_id"),
        (lambda: list(client.list_items(bad)), "labeling_session_id"),
        (lambda: list(client.list_submissions(bad)), "labeling_session_id"),
        (lambda: client.skip_item(bad, MISSING_ITEM, "alice"), "labeling_session_id"),
        (lambda: client.update_labeling_session(bad, name="x"), "labeling_session.labeling_session_id"),
    ]
    for call, field in calls:
        rejected(database, INVALID, "INVALID_FIELD", call, field)


def test_missing_session_everywhere(client: Client, database: Database, s: Setup) -> None:
    calls: list[Callable[[], Any]] = [
        lambda: client.get_labeling_session(MISSING_SESSION),
        lambda: client.delete_labeling_session(MISSING_SESSION),
        lambda: client.claim_next_item(MISSING_SESSION, "alice"),
        lambda: client.add_items(MISSING_SESSION, trace_ids=s.traces[:1]),
        lambda: client.remove_items(MISSING_SESSION, [MISSING_ITEM]),
        lambda: list(client.list_items(MISSING_SESSION)),
        lambda: list(client.list_submissions(MISSING_SESSION)),
        lambda: client.skip_item(MISSING_SESSION, MISSING_ITEM, "alice"),
        lambda: client.submit_labels(MISSING_SESSION, MISSING_ITEM, "alice", s.labels()),
        lambda: client.update_labeling_session(MISSING_SESSION, name="x"),
    ]
    for call in calls:
        rejected(database, NF, "LABELING_SESSION_NOT_FOUND", call)


def test_list_sessions_bad_paging(client: Client, database: Database, s: Setup) -> None:
    for i in range(3):
        client.create_labeling_session(s.exp, f"s{i}", s.schemas)
    first = client.labeling.ListLabelingSessions(pb.ListLabelingSessionsRequest(experiment_id=s.exp, page_size=1))
    assert first.next_page_token
    other = client.create_experiment("other")["experiment_id"]
    bad = [
        (pb.ListLabelingSessionsRequest(experiment_id=s.exp, page_size=-1), "INVALID_FIELD", "page_size"),
        (pb.ListLabelingSessionsRequest(experiment_id="x"), "INVALID_FIELD", "experiment_id"),
        (pb.ListLabelingSessionsRequest(experiment_id=s.exp, page_token="garbage"), "INVALID_PAGE_TOKEN", "page_token"),
        (
            pb.ListLabelingSessionsRequest(experiment_id=other, page_token=first.next_page_token),
            "INVALID_PAGE_TOKEN",
            "page_token",
        ),
    ]
    for request, reason, field in bad:
        rejected(database, INVALID, reason, lambda r=request: client.labeling.ListLabelingSessions(r), field)
    big = client.labeling.ListLabelingSessions(pb.ListLabelingSessionsRequest(experiment_id=s.exp, page_size=5000))
    assert len(big.labeling_sessions) == 3  # larger page sizes are clamped, not refused


# -- UpdateLabelingSession -------------------------------------------------------------------


def update(client: Client, sid: str, paths: list[str], **fields: Any) -> Callable[[], Any]:
    session = lpb.LabelingSession(labeling_session_id=sid, **fields)
    request = pb.UpdateLabelingSessionRequest(
        labeling_session=session, update_mask=field_mask_pb2.FieldMask(paths=paths)
    )
    return lambda: client.labeling.UpdateLabelingSession(request)


@pytest.mark.parametrize(
    ("paths", "fields", "field"),
    [
        (["experiment_id"], {"experiment_id": "5"}, "update_mask"),
        (["nope"], {}, "update_mask"),
        (["name"], {"name": ""}, "labeling_session.name"),
        (["state"], {}, "labeling_session.state"),
        (["raters_per_item"], {"raters_per_item": 0}, "labeling_session.raters_per_item"),
        (["label_schema_ids"], {"label_schema_ids": []}, "labeling_session.label_schema_ids"),
        (["assigned_users"], {"assigned_users": ["x", "x"]}, "labeling_session.assigned_users[1]"),
        (["lease_duration"], {}, "labeling_session.lease_duration"),
        (["dataset_id"], {"dataset_id": "d-"}, "labeling_session.dataset_id"),
        (["instructions"], {"instructions": "x" * 4_001}, "labeling_session.instructions"),
    ],
)
def test_update_invalid(
    client: Client, database: Database, sid: str, paths: list[str], fields: dict[str, Any], field: str
) -> None:
    rejected(database, INVALID, "INVALID_FIELD", update(client, sid, paths, **fields), field)


def test_update_refused_after_submission(client: Client, database: Database, s: Setup, sid: str, item: str) -> None:
    client.submit_labels(sid, item, "alice", s.labels())
    rejected(database, FP, "SESSION_HAS_SUBMISSIONS", update(client, sid, ["raters_per_item"], raters_per_item=5))
    rejected(
        database, FP, "SESSION_HAS_SUBMISSIONS", update(client, sid, ["label_schema_ids"], label_schema_ids=[s.good])
    )


# -- AddItems / RemoveItems / ListItems ------------------------------------------------------


def add(client: Client, sid: str, sources: list[lpb.LabelingItemSource]) -> Callable[[], Any]:
    return lambda: client.labeling.AddItems(pb.AddItemsRequest(labeling_session_id=sid, sources=sources))


def trace_source(trace_id: str) -> lpb.LabelingItemSource:
    return lpb.LabelingItemSource(trace_id=trace_id)


def record_source(dataset_id: str, record_id: str) -> lpb.LabelingItemSource:
    return lpb.LabelingItemSource(dataset_record=lpb.DatasetRecordRef(dataset_id=dataset_id, record_id=record_id))


@pytest.mark.parametrize(
    ("sources", "field"),
    [
        ([], "sources"),
        ([trace_source("tr-" + "0" * 32)] * 1_001, "sources"),
        ([lpb.LabelingItemSource()], "sources[0]"),
        ([trace_source("tr-123")], "sources[0].trace_id"),
        ([trace_source("tr-" + "0" * 32), trace_source("TR-" + "0" * 32)], "sources[1].trace_id"),
        ([record_source("d-1", "dr-" + "0" * 32)], "sources[0].dataset_record.dataset_id"),
        ([record_source("d-" + "0" * 32, "dr-1")], "sources[0].dataset_record.record_id"),
    ],
)
def test_add_items_invalid(
    client: Client, database: Database, sid: str, sources: list[lpb.LabelingItemSource], field: str
) -> None:
    rejected(database, INVALID, "INVALID_FIELD", add(client, sid, sources), field)


def test_add_items_missing_or_foreign_traces(client: Client, database: Database, s: Setup) -> None:
    sid = make_session(client, s, add=0)["labeling_session_id"]
    fresh = make_traces(client, s.exp, 2)
    missing = "tr-" + "f" * 32
    err = rejected(database, NF, "TRACE_NOT_FOUND", add(client, sid, [trace_source(fresh[0]), trace_source(missing)]))
    assert missing in err.metadata.get("trace_ids", "")
    other = client.create_experiment("other")["experiment_id"]
    foreign = make_traces(client, other, 1)[0]
    rejected(database, FP, "TRACE_NOT_IN_EXPERIMENT", add(client, sid, [trace_source(fresh[1]), trace_source(foreign)]))
    ds = client.create_dataset("golden", experiment_ids=[s.exp])["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": 1}}])
    rejected(database, NF, "DATASET_RECORD_NOT_FOUND", add(client, sid, [record_source(ds, "dr-" + "0" * 32)]))
    rejected(database, NF, "DATASET_NOT_FOUND", add(client, sid, [record_source("d-" + "0" * 32, "dr-" + "0" * 32)]))


def test_add_items_into_deleted_experiment(client: Client, database: Database, s: Setup) -> None:
    sid = make_session(client, s, add=0)["labeling_session_id"]
    client.delete_experiment(s.exp)
    rejected(database, FP, "EXPERIMENT_DELETED", add(client, sid, [trace_source(s.traces[0])]))


def test_remove_items_invalid(client: Client, database: Database, sid: str) -> None:
    def remove(ids: list[str]) -> Callable[[], Any]:
        return lambda: client.labeling.RemoveItems(pb.RemoveItemsRequest(labeling_session_id=sid, item_ids=ids))

    rejected(database, INVALID, "INVALID_FIELD", remove([]), "item_ids")
    rejected(database, INVALID, "INVALID_FIELD", remove(["lsi-1"]), "item_ids[0]")
    rejected(database, INVALID, "INVALID_FIELD", remove([MISSING_ITEM] * 1_001), "item_ids")
    real = items(client, sid)[0]["item_id"]
    rejected(database, NF, "ITEM_NOT_FOUND", remove([real, MISSING_ITEM]))


def test_list_items_invalid(client: Client, database: Database, sid: str) -> None:
    first = client.labeling.ListItems(pb.ListItemsRequest(labeling_session_id=sid, page_size=1))
    bad = [
        (pb.ListItemsRequest(labeling_session_id=sid, states=[0]), "INVALID_FIELD", "states[0]"),
        (pb.ListItemsRequest(labeling_session_id=sid, states=[1, 9]), "INVALID_FIELD", "states[1]"),
        (pb.ListItemsRequest(labeling_session_id=sid, page_size=-5), "INVALID_FIELD", "page_size"),
        (pb.ListItemsRequest(labeling_session_id=sid, rater="r" * 251), "INVALID_FIELD", "rater"),
        (pb.ListItemsRequest(labeling_session_id=sid, page_token="xyz"), "INVALID_PAGE_TOKEN", "page_token"),
        (
            pb.ListItemsRequest(labeling_session_id=sid, states=[1], page_token=first.next_page_token),
            "INVALID_PAGE_TOKEN",
            "page_token",
        ),
    ]
    for request, reason, field in bad:
        rejected(database, INVALID, reason, lambda r=request: client.labeling.ListItems(r), field)


def test_list_submissions_invalid(client: Client, database: Database, sid: str) -> None:
    bad = [
        (pb.ListSubmissionsRequest(labeling_session_id=sid, item_id="lsi-x"), "INVALID_FIELD", "item_id"),
        (pb.ListSubmissionsRequest(labeling_session_id=sid, page_size=-1), "INVALID_FIELD", "page_size"),
        (pb.ListSubmissionsRequest(labeling_session_id=sid, page_token="abc"), "INVALID_PAGE_TOKEN", "page_token"),
    ]
    for request, reason, field in bad:
        rejected(database, INVALID, reason, lambda r=request: client.labeling.ListSubmissions(r), field)


# -- ClaimNextItem / SkipItem ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"rater": ""}, "rater"),
        ({"rater": "r" * 251}, "rater"),
        ({"rater": "a\x00"}, "rater"),
        ({"lease_duration": seconds(5)}, "lease_duration"),
        ({"lease_duration": seconds(86_401)}, "lease_duration"),
    ],
)
def test_claim_invalid(client: Client, database: Database, sid: str, fields: dict[str, Any], field: str) -> None:
    request = pb.ClaimNextItemRequest(**({"labeling_session_id": sid, "rater": "alice"} | fields))
    rejected(database, INVALID, "INVALID_FIELD", lambda: client.labeling.ClaimNextItem(request), field)


def test_skip_invalid(client: Client, database: Database, sid: str, item: str) -> None:
    for kwargs, field in (({"item_id": "lsi-1"}, "item_id"), ({"rater": ""}, "rater"), ({"item_id": ""}, "item_id")):
        request = pb.SkipItemRequest(**({"labeling_session_id": sid, "item_id": item, "rater": "alice"} | kwargs))
        rejected(database, INVALID, "INVALID_FIELD", lambda r=request: client.labeling.SkipItem(r), field)
    rejected(database, FP, "RATER_NOT_ASSIGNED", lambda: client.skip_item(sid, item, "mallory"))
    rejected(database, NF, "ITEM_NOT_FOUND", lambda: client.skip_item(sid, MISSING_ITEM, "alice"))


# -- SubmitLabels ----------------------------------------------------------------------------


def submit(client: Client, sid: str, item: str, labels: list[lpb.Label], rater: str = "alice") -> Callable[[], Any]:
    request = pb.SubmitLabelsRequest(labeling_session_id=sid, item_id=item, rater=rater, labels=labels)
    return lambda: client.labeling.SubmitLabels(request)


def lab(schema_id: str, value: Any, comment: str = "") -> lpb.Label:
    return lpb.Label(schema_id=schema_id, value=to_value(value), comment=comment)


def test_submit_invalid_fields(client: Client, database: Database, s: Setup, sid: str, item: str) -> None:
    good = [lab(s.good, True), lab(s.score, 3)]
    cases: list[tuple[Callable[[], Any], str]] = [
        (submit(client, sid, item, []), "labels"),
        (submit(client, sid, item, good, rater=""), "rater"),
        (submit(client, sid, item, good, rater="r" * 251), "rater"),
        (submit(client, sid, "lsi-zz", good), "item_id"),
        (submit(client, sid, item, [lab("ls-1", True), lab(s.score, 3)]), "labels[0].schema_id"),
        (submit(client, sid, item, [lab(s.good, True, "c" * 10_001), lab(s.score, 3)]), "labels[0].comment"),
        (submit(client, sid, item, [lab(s.good, True), lab(s.score, 3)] * 11), "labels"),
    ]
    for call, field in cases:
        rejected(database, INVALID, "INVALID_FIELD", call, field)


def test_submit_invalid_labels(client: Client, database: Database, s: Setup, sid: str, item: str) -> None:
    cases: list[tuple[list[lpb.Label], str]] = [
        ([lab(MISSING_SCHEMA, True), lab(s.score, 3)], "labels[0].schema_id"),
        ([lab(s.good, True), lab(s.good, False), lab(s.score, 3)], "labels[1].schema_id"),
        ([lab(s.good, True)], "labels"),
        ([lab(s.good, "yes"), lab(s.score, 3)], "labels[0].value"),
        ([lab(s.good, True), lab(s.score, 11)], "labels[1].value"),
        ([lab(s.good, True), lab(s.score, None)], "labels[1].value"),
        ([lab(s.good, True), lab(s.score, 3, "why")], "labels[1].comment"),
    ]
    for labels, field in cases:
        rejected(database, INVALID, "INVALID_LABEL", submit(client, sid, item, labels), field)
    no_value = [lpb.Label(schema_id=s.good), lab(s.score, 3)]
    rejected(database, INVALID, "INVALID_LABEL", submit(client, sid, item, no_value), "labels[0].value")


def test_text_label_with_nul(client: Client, database: Database, s: Setup) -> None:
    note = make_schema(client, s.exp, "note", kind="text")
    session = client.create_labeling_session(s.exp, "notes", [note])["labeling_session_id"]
    item = client.add_items(session, trace_ids=s.traces[:1])["items"][0]["item_id"]
    rejected(
        database, INVALID, "INVALID_FIELD", submit(client, session, item, [lab(note, "a\x00b")]), "labels[0].value"
    )


def test_submit_preconditions(client: Client, database: Database, s: Setup, sid: str, item: str) -> None:
    labels = [lab(s.good, True), lab(s.score, 3)]
    rejected(database, FP, "RATER_NOT_ASSIGNED", submit(client, sid, item, labels, rater="mallory"))
    rejected(database, NF, "ITEM_NOT_FOUND", submit(client, sid, MISSING_ITEM, labels))
    client.claim_next_item(sid, "bob")  # the second slot of the first item
    client.update_labeling_session(sid, assigned_users=["alice", "bob", "carol"])
    rejected(database, FP, "NO_FREE_SLOT", submit(client, sid, item, labels, rater="carol"))
    client.skip_item(sid, item, "alice")
    rejected(database, FP, "ITEM_SKIPPED", submit(client, sid, item, labels, rater="alice"))
