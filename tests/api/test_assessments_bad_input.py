"""AssessmentService rejects bad input: the status, the reason, the field, and nothing stored.

Every rule is checked through the real server on both databases; each case snapshots the tables
before the call and compares after it.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import struct_pb2

from mlgenai.client import Client, MlgenaiError, to_value
from mlgenai.v1 import (
    assessment_pb2 as apb,
    assessment_service_pb2_grpc as ag,
    trace_service_pb2 as tpb,
    trace_service_pb2_grpc as tg,
)
from store.uow import Database
from tests.api.test_assessments import (
    HUMAN,
    RUN,
    TABLES,
    Api,
    expectation,
    feedback,
    tid,
)
from tests.helpers import expect_error, snapshot

INVALID = grpc.StatusCode.INVALID_ARGUMENT
NOT_FOUND = grpc.StatusCode.NOT_FOUND
UNKNOWN_ID = "a-" + "e" * 32


@dataclass
class World:
    api: Api
    db: Database
    exp: str
    trace: str
    other_trace: str
    existing: apb.Assessment  # a valid feedback on `trace`
    existing_expectation: apb.Assessment


@pytest.fixture
def world(client: Client, database: Database) -> World:
    api = Api(client, ag.AssessmentServiceStub(client.channel), tg.TraceServiceStub(client.channel))
    exp = api.experiment()
    trace, other = api.trace(exp, 1), api.trace(exp, 2)
    existing = api.create(feedback(trace, value=0.5, metadata={"k": "v"}))
    return World(api, database, exp, trace, other, existing, api.create(expectation(trace)))


@contextmanager
def nothing_stored(db: Database) -> Iterator[None]:
    before = snapshot(db, *TABLES)
    yield
    assert snapshot(db, *TABLES) == before, "a rejected call changed the database"


def rejected(w: World, call: Callable[[], Any], field: str, reason: str = "INVALID_FIELD") -> MlgenaiError:
    with nothing_stored(w.db):
        err = expect_error(INVALID, reason, call, field=field)
    text = err.details().lower()
    assert not any(word in text for word in ("select ", "insert ", "sqlalchemy", "psycopg", "traceback")), text
    return err


def nul_value() -> struct_pb2.Value:
    return to_value({"ok": ["fine", {"deep": "a\x00b"}]})


def _with(msg: apb.Assessment, change: Callable[[apb.Assessment], None]) -> apb.Assessment:
    change(msg)
    return msg


def _no_value(m: apb.Assessment) -> None:
    m.feedback.ClearField("value")


def _null_value(m: apb.Assessment) -> None:
    m.feedback.value.CopyFrom(to_value(None))


def _value_and_error(m: apb.Assessment) -> None:
    m.feedback.error.error_code = "X"


def _no_kind(m: apb.Assessment) -> None:
    m.ClearField("feedback")


def _no_source(m: apb.Assessment) -> None:
    m.ClearField("source")


def _nan(m: apb.Assessment) -> None:
    m.feedback.value.number_value = float("nan")


def _inf_in_list(m: apb.Assessment) -> None:
    m.expectation.value.list_value.values.add(number_value=float("inf"))


def _nested_nul(m: apb.Assessment) -> None:
    m.feedback.value.CopyFrom(nul_value())


def src(source_type: int = HUMAN, source_id: str = "") -> apb.AssessmentSource:
    return apb.AssessmentSource(source_type=source_type, source_id=source_id)  # type: ignore[arg-type]


def failed(trace_id: str, **error: str) -> apb.Assessment:
    return feedback(trace_id, error=apb.AssessmentError(**error))


def bare_expectation(trace_id: str) -> apb.Assessment:
    return apb.Assessment(trace_id=trace_id, name="e", source=src(), expectation=apb.Expectation())


F_VALUE, E_VALUE, ERROR = "assessment.feedback.value", "assessment.expectation.value", "assessment.feedback.error"

# -- CreateAssessment: validation --------------------------------------------------------------

BAD_CREATES: list[tuple[str, Callable[[str], apb.Assessment], str]] = [
    ("no-trace-id", lambda t: feedback(""), "assessment.trace_id"),
    ("bad-trace-id", lambda t: feedback("tr-xyz"), "assessment.trace_id"),
    ("upper-trace-id", lambda t: feedback("tr-" + "A" * 32), "assessment.trace_id"),
    ("short-span-id", lambda t: feedback(t, span_id="abc"), "assessment.span_id"),
    ("upper-span-id", lambda t: feedback(t, span_id="ABCDEF0123456789"), "assessment.span_id"),
    ("empty-name", lambda t: feedback(t, name=""), "assessment.name"),
    ("blank-name", lambda t: feedback(t, name="  \t"), "assessment.name"),
    ("251-char-name", lambda t: feedback(t, name="n" * 251), "assessment.name"),
    ("251-emoji-name", lambda t: feedback(t, name="🙂" * 251), "assessment.name"),
    ("nul-name", lambda t: feedback(t, name="a\x00b"), "assessment.name"),
    ("no-source", lambda t: _with(feedback(t), _no_source), "assessment.source"),
    ("unspecified-source", lambda t: feedback(t, source=src(0, "x")), "assessment.source.source_type"),
    ("unknown-source", lambda t: feedback(t, source=src(99)), "assessment.source.source_type"),
    ("251-source-id", lambda t: feedback(t, source=src(HUMAN, "s" * 251)), "assessment.source.source_id"),
    ("nul-source-id", lambda t: feedback(t, source=src(HUMAN, "\x00")), "assessment.source.source_id"),
    ("no-feedback-or-expectation", lambda t: _with(feedback(t), _no_kind), "assessment.feedback"),
    ("feedback-without-value", lambda t: _with(feedback(t), _no_value), F_VALUE),
    ("feedback-null-value", lambda t: _with(feedback(t), _null_value), F_VALUE),
    ("feedback-value-and-error", lambda t: _with(feedback(t), _value_and_error), "assessment.feedback"),
    ("expectation-without-value", bare_expectation, E_VALUE),
    ("expectation-null-value", lambda t: expectation(t, value=None), E_VALUE),
    ("nul-string-value", lambda t: feedback(t, value="a\x00"), F_VALUE),
    ("nul-nested-value", lambda t: _with(feedback(t), _nested_nul), F_VALUE),
    ("nul-object-key", lambda t: feedback(t, value={"a\x00": 1}), F_VALUE),
    ("nul-expectation", lambda t: expectation(t, value=["x", "\x00"]), E_VALUE),
    ("nan-value", lambda t: _with(feedback(t), _nan), F_VALUE),
    ("inf-in-list", lambda t: _with(expectation(t), _inf_in_list), E_VALUE),
    ("251-error-code", lambda t: failed(t, error_code="E" * 251), f"{ERROR}.error_code"),
    ("8001-error-message", lambda t: failed(t, error_message="m" * 8_001), f"{ERROR}.error_message"),
    ("nul-error-message", lambda t: failed(t, error_message="\x00"), f"{ERROR}.error_message"),
    ("100001-stack-trace", lambda t: failed(t, stack_trace="s" * 100_001), f"{ERROR}.stack_trace"),
    ("8001-rationale", lambda t: feedback(t, rationale="r" * 8_001), "assessment.rationale"),
    ("nul-rationale", lambda t: feedback(t, rationale="why\x00"), "assessment.rationale"),
    ("1001-metadata-keys", lambda t: feedback(t, metadata={f"k{i}": "v" for i in range(1_001)}), "assessment.metadata"),
    ("empty-metadata-key", lambda t: feedback(t, metadata={"": "v"}), "assessment.metadata[]"),
    ("251-metadata-key", lambda t: feedback(t, metadata={"k" * 251: "v"}), f"assessment.metadata[{'k' * 50}]"),
    ("8001-metadata-value", lambda t: feedback(t, metadata={"k": "v" * 8_001}), "assessment.metadata[k]"),
    ("nul-metadata-key", lambda t: feedback(t, metadata={"a\x00": "v"}), "assessment.metadata[a\x00]"),
    ("nul-metadata-value", lambda t: feedback(t, metadata={"k": "\x00"}), "assessment.metadata[k]"),
    ("short-run-id", lambda t: feedback(t, run_id="abc"), "assessment.run_id"),
    ("upper-run-id", lambda t: feedback(t, run_id=RUN.upper()), "assessment.run_id"),
    ("33-char-run-id", lambda t: feedback(t, run_id=RUN + "0"), "assessment.run_id"),
    ("bad-overrides", lambda t: feedback(t, overrides="a-123"), "assessment.overrides"),
    ("dataset-id-overrides", lambda t: feedback(t, overrides="d-" + "0" * 32), "assessment.overrides"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "field"), [c[1:] for c in BAD_CREATES], ids=[c[0] for c in BAD_CREATES])
def test_create_rejects(world: World, make: Callable[[str], apb.Assessment], field: str) -> None:
    msg = make(world.trace)
    rejected(world, lambda: world.api.create(msg), field)
    # The same item in a batch names its position.
    batch_field = field.replace("assessment", "assessments[1]", 1)
    rejected(world, lambda: world.api.batch(feedback(world.trace), msg), batch_field)


def test_create_reports_every_problem_at_once(world: World) -> None:
    msg = feedback("bad", name="", span_id="x", run_id="y", rationale="r" * 8_001)
    err = rejected(world, lambda: world.api.create(msg), "assessment.trace_id")
    fields = {v.field for v in err.violations}
    assert fields == {
        "assessment.trace_id",
        "assessment.name",
        "assessment.span_id",
        "assessment.run_id",
        "assessment.rationale",
    }


def test_create_limits_are_inclusive(world: World) -> None:
    msg = feedback(
        world.trace,
        name="n" * 250,
        rationale="r" * 8_000,
        metadata={"k" * 250: "v" * 8_000, **{f"m{i}": "" for i in range(999)}},
        source=apb.AssessmentSource(source_type=HUMAN, source_id="🙂" * 250),
    )
    created = world.api.create(msg)
    assert created.name == msg.name and len(created.metadata) == 1_000 and created.source == msg.source


def test_create_rejects_bad_request_id(world: World) -> None:
    rejected(world, lambda: world.api.create(feedback(world.trace), request_id="not-a-uuid"), "request_id")
    rejected(world, lambda: world.api.batch(feedback(world.trace), request_id="nope"), "request_id")


# -- CreateAssessment: rules the database decides ----------------------------------------------


def test_create_on_missing_trace(world: World) -> None:
    with nothing_stored(world.db):
        err = expect_error(NOT_FOUND, "TRACE_NOT_FOUND", lambda: world.api.create(feedback(tid(404))))
    assert err.metadata["trace_id"] == tid(404)


def test_override_of_unknown_assessment(world: World) -> None:
    with nothing_stored(world.db):
        err = expect_error(
            NOT_FOUND, "ASSESSMENT_NOT_FOUND", lambda: world.api.create(feedback(world.trace, overrides=UNKNOWN_ID))
        )
    assert err.metadata["assessment_id"] == UNKNOWN_ID


def test_override_on_another_trace(world: World) -> None:
    msg = feedback(world.other_trace, overrides=world.existing.assessment_id)
    rejected(world, lambda: world.api.create(msg), "assessment.overrides", "INVALID_OVERRIDE")
    assert world.api.valid(world.existing.assessment_id)


def test_override_of_an_overridden_assessment(world: World) -> None:
    world.api.create(feedback(world.trace, overrides=world.existing.assessment_id))
    msg = feedback(world.trace, overrides=world.existing.assessment_id)
    rejected(world, lambda: world.api.create(msg), "assessment.overrides", "INVALID_OVERRIDE")
    items = [feedback(world.trace), msg]
    rejected(world, lambda: world.api.batch(*items), "assessments[1].overrides", "INVALID_OVERRIDE")


# -- BatchCreateAssessments --------------------------------------------------------------------


def test_batch_size_limits(world: World) -> None:
    rejected(world, world.api.batch, "assessments")
    too_many = [feedback(world.trace)] * 1_001
    rejected(world, lambda: world.api.batch(*too_many), "assessments")


def test_batch_names_every_bad_item(world: World) -> None:
    items = [feedback(world.trace, name=f"ok{i}") for i in range(6)]
    items[3] = feedback(world.trace, name="")
    items[5] = feedback(world.trace, span_id="nope", metadata={"k": "\x00"})
    err = rejected(world, lambda: world.api.batch(*items), "assessments[3].name")
    assert [v.field for v in err.violations] == [
        "assessments[3].name",
        "assessments[5].span_id",
        "assessments[5].metadata[k]",
    ]


def test_batch_with_one_missing_trace_stores_nothing(world: World) -> None:
    items = [feedback(world.trace), feedback(world.other_trace), feedback(tid(404)), feedback(world.trace)]
    with nothing_stored(world.db):
        expect_error(NOT_FOUND, "TRACE_NOT_FOUND", lambda: world.api.batch(*items))


# -- Get and Delete ----------------------------------------------------------------------------

BAD_IDS = ["", "a-123", "a-" + "E" * 32, "a-" + "0" * 33, "b-" + "0" * 32, "a-" + "0" * 31 + "\x00"]
BAD_ID_NAMES = ["empty", "short", "upper", "long", "prefix", "nul"]


@pytest.mark.parametrize("assessment_id", BAD_IDS, ids=BAD_ID_NAMES)
def test_get_and_delete_reject_bad_ids(world: World, assessment_id: str) -> None:
    rejected(world, lambda: world.api.get(assessment_id), "assessment_id")
    rejected(world, lambda: world.api.delete(assessment_id), "assessment_id")


# -- UpdateAssessment --------------------------------------------------------------------------


def change_of(w: World, **fields: Any) -> apb.Assessment:
    return apb.Assessment(assessment_id=w.existing.assessment_id, **fields)


@pytest.mark.parametrize("assessment_id", BAD_IDS, ids=BAD_ID_NAMES)
def test_update_rejects_bad_ids(world: World, assessment_id: str) -> None:
    change = apb.Assessment(assessment_id=assessment_id, name="x")
    rejected(world, lambda: world.api.update(change, "name"), "assessment.assessment_id")


@pytest.mark.parametrize(
    "path", ["trace_id", "span_id", "source", "source.source_id", "run_id", "overrides", "feedback.value", "nope", ""]
)
def test_update_rejects_immutable_and_unknown_paths(world: World, path: str) -> None:
    change = change_of(world, trace_id=world.other_trace, name="x")
    rejected(world, lambda: world.api.update(change, "name", path), "update_mask")


def test_update_cannot_switch_between_feedback_and_expectation(world: World) -> None:
    to_expectation = change_of(world, expectation=apb.Expectation(value=to_value("x")))
    rejected(world, lambda: world.api.update(to_expectation, "expectation"), "assessment.expectation")
    rejected(world, lambda: world.api.update(to_expectation), "assessment.expectation")
    to_feedback = apb.Assessment(
        assessment_id=world.existing_expectation.assessment_id, feedback=apb.Feedback(value=to_value(1))
    )
    rejected(world, lambda: world.api.update(to_feedback, "feedback"), "assessment.feedback")
    rejected(world, lambda: world.api.update(to_feedback, "feedback", "expectation"), "update_mask")


def fb(value: Any = None, **error: str) -> apb.Feedback:
    if error:
        return apb.Feedback(error=apb.AssessmentError(**error))
    return apb.Feedback(value=to_value(value))


BAD_UPDATES: list[tuple[str, Callable[[World], apb.Assessment], tuple[str, ...], str]] = [
    ("empty-name", lambda w: change_of(w, name=""), ("name",), "assessment.name"),
    ("251-name", lambda w: change_of(w, name="n" * 251), ("name",), "assessment.name"),
    ("nul-name", lambda w: change_of(w, name="\x00"), (), "assessment.name"),
    ("8001-rationale", lambda w: change_of(w, rationale="r" * 8_001), ("rationale",), "assessment.rationale"),
    ("nul-metadata", lambda w: change_of(w, metadata={"k": "\x00"}), ("metadata",), "assessment.metadata[k]"),
    ("251-metadata-key", lambda w: change_of(w, metadata={"k" * 251: "v"}), (), f"assessment.metadata[{'k' * 50}]"),
    ("feedback-masked-but-absent", lambda w: change_of(w, name="x"), ("feedback",), F_VALUE),
    ("feedback-null", lambda w: change_of(w, feedback=fb(None)), ("feedback",), F_VALUE),
    ("feedback-nul", lambda w: change_of(w, feedback=fb("\x00")), (), F_VALUE),
    ("feedback-long-error", lambda w: change_of(w, feedback=fb(error_code="E" * 251)), (), f"{ERROR}.error_code"),
]  # fmt: skip


@pytest.mark.parametrize(("make", "paths", "field"), [c[1:] for c in BAD_UPDATES], ids=[c[0] for c in BAD_UPDATES])
def test_update_rejects(
    world: World, make: Callable[[World], apb.Assessment], paths: tuple[str, ...], field: str
) -> None:
    change = make(world)
    rejected(world, lambda: world.api.update(change, *paths), field)


def test_update_rejects_non_finite_value(world: World) -> None:
    change = change_of(world)
    change.feedback.value.number_value = float("-inf")
    rejected(world, lambda: world.api.update(change, "feedback"), F_VALUE)


def test_update_rejects_value_and_error(world: World) -> None:
    change = change_of(world, feedback=fb(0.5))
    change.feedback.error.error_code = "E"
    rejected(world, lambda: world.api.update(change), "assessment.feedback")


def test_update_rejects_metadata_beyond_1000_keys_after_merge(world: World) -> None:
    change = change_of(world, metadata={f"m{i}": "v" for i in range(1_000)})  # plus the stored "k"
    rejected(world, lambda: world.api.update(change, "metadata"), "assessment.metadata")
    replace = change_of(world, metadata={"k": "new", **{f"m{i}": "v" for i in range(999)}})
    assert len(world.api.update(replace, "metadata").metadata) == 1_000


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"trace_id": tid(2)}, "assessment.trace_id"),
        ({"span_id": "1" * 16}, "assessment.span_id"),
        ({"run_id": RUN}, "assessment.run_id"),
        ({"overrides": UNKNOWN_ID}, "assessment.overrides"),
        ({"source": apb.AssessmentSource(source_type=HUMAN, source_id="gpt-judge")}, "assessment.source.source_type"),
        ({"source": apb.AssessmentSource(source_type=2, source_id="other")}, "assessment.source.source_id"),
    ],
    ids=["trace_id", "span_id", "run_id", "overrides", "source-type", "source-id"],
)
def test_update_without_mask_refuses_changed_immutable_fields(world: World, fields: dict[str, Any], field: str) -> None:
    change = change_of(world, name="renamed", **fields)
    rejected(world, lambda: world.api.update(change), field)


def test_update_of_a_trace_in_a_deleted_experiment_changes_nothing(world: World) -> None:
    world.api.client.delete_experiment(world.exp)
    with nothing_stored(world.db):
        expect_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "EXPERIMENT_DELETED",
            lambda: world.api.update(change_of(world, metadata={"a": "b"}), "metadata"),
        )


# -- ListAssessments ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("request_fields", "field"),
    [
        ({}, "trace_id"),
        ({"trace_id": tid(1), "run_id": RUN}, "run_id"),
        ({"trace_id": tid(1), "experiment_id": "1"}, "experiment_id"),
        ({"trace_id": "tr-nope"}, "trace_id"),
        ({"run_id": "nope"}, "run_id"),
        ({"experiment_id": "abc"}, "experiment_id"),
        ({"experiment_id": "99999999999999999999"}, "experiment_id"),
        ({"experiment_id": "1", "page_size": -1}, "page_size"),
        ({"experiment_id": "1", "filter": "name = '" + "x" * 10_000 + "'"}, "filter"),
    ],
    ids=["no-scope", "two-scopes", "trace-and-experiment", "bad-trace", "bad-run", "bad-experiment", "huge-experiment",
         "negative-page-size", "long-filter"],
)  # fmt: skip
def test_list_rejects(world: World, request_fields: dict[str, Any], field: str) -> None:
    rejected(world, lambda: world.api.list(**request_fields), field)


@pytest.mark.parametrize(
    "filter",
    [
        "score = 1",
        "feedback.score > 1",
        "valid = 'yes'",
        "valid > TRUE",
        "source_type = 'ROBOT'",
        "source_type = 1",
        "kind = 'issue'",
        "name > 'a'",
        "create_time = 'yesterday'",
        "name = ",
        "name = 'a' AND",
        "(name = 'a'",
    ],
)
def test_list_rejects_bad_filters(world: World, filter: str) -> None:
    rejected(world, lambda: world.api.list(experiment_id=world.exp, filter=filter), "filter", "INVALID_FILTER")


def test_list_rejects_bad_page_tokens(world: World) -> None:
    for token in ("garbage", "AAAA", world.api.list(experiment_id=world.exp, page_size=1).next_page_token[:-2] + "xx"):
        rejected(
            world,
            lambda t=token: world.api.list(experiment_id=world.exp, page_token=t),
            "page_token",
            "INVALID_PAGE_TOKEN",
        )  # type: ignore[misc]


# -- SearchTraces filters on assessments -------------------------------------------------------


@pytest.mark.parametrize(
    "filter",
    [
        "feedback.score > 'a'",
        "feedback.score > TRUE",
        "feedback.score IN ('a', 1)",
        "feedback = 1",
        "expectation = 'x'",
        "feedback.score RLIKE 1",
    ],
)
def test_search_traces_rejects_bad_assessment_filters(world: World, filter: str) -> None:
    req = tpb.SearchTracesRequest(experiment_ids=[world.exp], filter=filter)
    with nothing_stored(world.db):
        expect_error(INVALID, "INVALID_FILTER", lambda: world.api.traces.SearchTraces(req))
