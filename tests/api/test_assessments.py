"""AssessmentService (SPEC §4) through the real server and the generated stubs, on both databases.

Rejected input is in ``test_assessments_bad_input.py``; the builders here are shared with it.
"""

from __future__ import annotations

import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import grpc
import pytest
from google.protobuf import field_mask_pb2

from mlgenai.client import Client, MlgenaiError, from_value, to_value
from mlgenai.v1 import (
    assessment_pb2 as apb,
    assessment_service_pb2 as pb,
    assessment_service_pb2_grpc as ag,
    trace_pb2,
    trace_service_pb2 as tpb,
    trace_service_pb2_grpc as tg,
)
from store.uow import Database
from tests.helpers import count_rows, expect_error, snapshot

TABLES = ("assessments", "traces", "request_ids")
HUMAN = apb.ASSESSMENT_SOURCE_TYPE_HUMAN
JUDGE = apb.ASSESSMENT_SOURCE_TYPE_LLM_JUDGE
CODE = apb.ASSESSMENT_SOURCE_TYPE_CODE
RUN = "0123456789abcdef" * 2
OTHER_RUN = "fedcba9876543210" * 2
THREADS = 8


def tid(n: int) -> str:
    return f"tr-{n:032x}"


def feedback(trace_id: str, name: str = "correctness", value: Any = True, **fields: Any) -> apb.Assessment:
    """A feedback message; ``error=AssessmentError(...)`` replaces the value."""
    fields.setdefault("source", apb.AssessmentSource(source_type=JUDGE, source_id="gpt-judge"))
    error = fields.pop("error", None)
    fb = apb.Feedback(error=error) if error is not None else apb.Feedback(value=to_value(value))
    return apb.Assessment(trace_id=trace_id, name=name, feedback=fb, **fields)


def expectation(trace_id: str, name: str = "expected_response", value: Any = "42", **fields: Any) -> apb.Assessment:
    fields.setdefault("source", apb.AssessmentSource(source_type=HUMAN, source_id="alice"))
    return apb.Assessment(trace_id=trace_id, name=name, expectation=apb.Expectation(value=to_value(value)), **fields)


def value_of(a: apb.Assessment) -> Any:
    part = a.feedback if a.WhichOneof("value") == "feedback" else a.expectation
    return from_value(part.value)


@dataclass
class Api:
    client: Client
    stub: ag.AssessmentServiceStub
    traces: tg.TraceServiceStub

    def experiment(self, name: str = "agent") -> str:
        return str(self.client.create_experiment(name)["experiment_id"])

    def trace(self, experiment_id: str, n: int) -> str:
        info = trace_pb2.TraceInfo(trace_id=tid(n), experiment_id=experiment_id)
        self.traces.StartTrace(tpb.StartTraceRequest(trace_info=info))
        return tid(n)

    def create(self, assessment: apb.Assessment, request_id: str = "") -> apb.Assessment:
        return self.stub.CreateAssessment(pb.CreateAssessmentRequest(assessment=assessment, request_id=request_id))

    def batch(self, *assessments: apb.Assessment, request_id: str = "") -> list[apb.Assessment]:
        req = pb.BatchCreateAssessmentsRequest(assessments=assessments, request_id=request_id)
        return list(self.stub.BatchCreateAssessments(req).assessments)

    def get(self, assessment_id: str) -> apb.Assessment:
        return self.stub.GetAssessment(pb.GetAssessmentRequest(assessment_id=assessment_id))

    def delete(self, assessment_id: str) -> None:
        self.stub.DeleteAssessment(pb.DeleteAssessmentRequest(assessment_id=assessment_id))

    def update(self, assessment: apb.Assessment, *paths: str) -> apb.Assessment:
        mask = field_mask_pb2.FieldMask(paths=paths)
        return self.stub.UpdateAssessment(pb.UpdateAssessmentRequest(assessment=assessment, update_mask=mask))

    def list(self, **request: Any) -> pb.ListAssessmentsResponse:
        return self.stub.ListAssessments(pb.ListAssessmentsRequest(**request))

    def list_all(self, page_size: int = 0, page_token: str = "", **request: Any) -> list[apb.Assessment]:
        out: list[apb.Assessment] = []
        token = page_token
        while True:
            page = self.list(page_size=page_size, page_token=token, **request)
            out.extend(page.assessments)
            token = page.next_page_token
            if not token:
                return out

    def valid(self, assessment_id: str) -> bool:
        return self.get(assessment_id).valid

    def search(self, experiment_id: str, filter: str) -> set[str]:
        req = tpb.SearchTracesRequest(experiment_ids=[experiment_id], filter=filter, page_size=1000)
        return {t.trace_id for t in self.traces.SearchTraces(req).traces}


@pytest.fixture
def api(client: Client) -> Api:
    return Api(client, ag.AssessmentServiceStub(client.channel), tg.TraceServiceStub(client.channel))


@pytest.fixture
def exp(api: Api) -> str:
    return api.experiment()


# -- create and get --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "value",
    [0.75, 3, -2.5, 0, True, False, "yes", "", {"answer": "42", "facts": [1, "two", None]}, [1, 2, 3]],
    ids=["float", "int", "negative", "zero", "true", "false", "yes", "empty-string", "object", "list"],
)
def test_create_and_get_feedback(api: Api, exp: str, value: Any) -> None:
    trace = api.trace(exp, 1)
    created = api.create(feedback(trace, value=value, rationale="because", metadata={"k": "v"}))
    assert created.assessment_id.startswith("a-") and len(created.assessment_id) == 34
    int(created.assessment_id[2:], 16)
    assert created.trace_id == trace and created.name == "correctness"
    assert created.source == apb.AssessmentSource(source_type=JUDGE, source_id="gpt-judge")
    assert created.WhichOneof("value") == "feedback" and value_of(created) == value
    assert created.rationale == "because" and dict(created.metadata) == {"k": "v"}
    assert created.valid and created.overrides == "" and created.span_id == "" and created.run_id == ""
    assert created.create_time == created.update_time and created.create_time.seconds > 0
    assert api.get(created.assessment_id) == created


def test_create_expectation_with_every_optional_field(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    msg = expectation(
        trace,
        value={"answer": "Paris", "sources": ["wiki"]},
        span_id="00000000000000ab",
        run_id=RUN,
        rationale="ground truth",
        metadata={"mlflow.assessment.scorerName": "x", "é": "ü" * 8_000},
        source=apb.AssessmentSource(source_type=CODE, source_id="s" * 250),
    )
    # Output-only fields are ignored on create.
    msg.assessment_id, msg.valid = "a-" + "0" * 32, False
    msg.create_time.FromMilliseconds(1)
    created = api.create(msg)
    assert created.assessment_id != msg.assessment_id and created.valid and created.create_time.seconds > 1
    assert created.WhichOneof("value") == "expectation"
    assert value_of(created) == {"answer": "Paris", "sources": ["wiki"]}
    assert created.span_id == "00000000000000ab" and created.run_id == RUN and created.source.source_type == CODE
    assert dict(created.metadata) == dict(msg.metadata)
    assert api.get(created.assessment_id) == created
    assert count_rows(database, "assessments") == 1


def test_feedback_error_has_no_value(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    error = apb.AssessmentError(error_code="RATE_LIMIT", error_message="429", stack_trace="x" * 100_000)
    created = api.create(feedback(trace, error=error))
    got = api.get(created.assessment_id)
    assert got.feedback.HasField("error") and not got.feedback.HasField("value")
    assert got.feedback.error == error
    # An explicit null value next to the error is the same thing.
    with_null = feedback(trace, error=error)
    with_null.feedback.value.CopyFrom(to_value(None))
    assert api.create(with_null).feedback.error == error
    # Typed copies stay empty: no value filter matches an error.
    assert api.search(exp, "feedback.correctness IS NOT NULL") == {trace}
    assert api.search(exp, "feedback.correctness = 'RATE_LIMIT'") == set()
    assert count_rows(database, "assessments", "value IS NULL") == 2


def test_get_unknown_assessment(api: Api) -> None:
    expect_error(grpc.StatusCode.NOT_FOUND, "ASSESSMENT_NOT_FOUND", lambda: api.get("a-" + "1" * 32))


def test_deleted_experiment_refuses_writes_but_reads_work(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    first = api.create(feedback(trace))
    api.client.delete_experiment(exp)
    state = snapshot(database, *TABLES)
    failed = grpc.StatusCode.FAILED_PRECONDITION
    expect_error(failed, "EXPERIMENT_DELETED", lambda: api.create(feedback(trace)))
    expect_error(failed, "EXPERIMENT_DELETED", lambda: api.batch(feedback(trace)))
    expect_error(failed, "EXPERIMENT_DELETED", lambda: api.create(feedback(trace, overrides=first.assessment_id)))
    renamed = apb.Assessment(assessment_id=first.assessment_id, name="renamed")
    expect_error(failed, "EXPERIMENT_DELETED", lambda: api.update(renamed, "name"))
    expect_error(failed, "EXPERIMENT_DELETED", lambda: api.delete(first.assessment_id))
    assert snapshot(database, *TABLES) == state
    assert api.get(first.assessment_id) == first
    assert [a.assessment_id for a in api.list_all(experiment_id=exp)] == [first.assessment_id]
    api.client.undelete_experiment(exp)
    assert api.create(feedback(trace)).valid


# -- overrides ---------------------------------------------------------------------------------


def test_override_chain_and_deletes_restore(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace, value=0.2))
    b = api.create(feedback(trace, value=0.5, overrides=a.assessment_id))
    assert b.valid and b.overrides == a.assessment_id and not api.valid(a.assessment_id)
    c = api.create(
        feedback(trace, value=0.9, overrides=b.assessment_id, source=apb.AssessmentSource(source_type=HUMAN))
    )
    assert [api.valid(x.assessment_id) for x in (a, b, c)] == [False, False, True]
    assert api.search(exp, "feedback.correctness = 0.9") == {trace}
    assert api.search(exp, "feedback.correctness = 0.5") == set()
    api.delete(c.assessment_id)
    assert [api.valid(x.assessment_id) for x in (a, b)] == [False, True]
    assert api.search(exp, "feedback.correctness = 0.5") == {trace}
    api.delete(b.assessment_id)
    assert api.valid(a.assessment_id)
    assert api.search(exp, "feedback.correctness = 0.2") == {trace}
    assert api.get(a.assessment_id).update_time.ToMilliseconds() >= a.update_time.ToMilliseconds()


def test_deleting_inside_a_chain_keeps_it_whole(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace, value=1))
    b = api.create(feedback(trace, value=2, overrides=a.assessment_id))
    c = api.create(feedback(trace, value=3, overrides=b.assessment_id))
    api.delete(b.assessment_id)  # invalid, inside the chain: nothing becomes valid
    assert not api.valid(a.assessment_id)
    c_now = api.get(c.assessment_id)
    assert c_now.valid and c_now.overrides == a.assessment_id
    api.delete(c.assessment_id)
    assert api.valid(a.assessment_id)
    api.delete(a.assessment_id)
    assert api.list_all(trace_id=trace) == []


def test_deleting_the_root_of_a_chain(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace))
    b = api.create(feedback(trace, overrides=a.assessment_id))
    api.delete(a.assessment_id)
    b_now = api.get(b.assessment_id)
    assert b_now.valid and b_now.overrides == ""
    api.delete(b.assessment_id)


def test_concurrent_overrides_of_one_assessment(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    base = api.create(feedback(trace, value=0))
    barrier = threading.Barrier(THREADS)

    def override(i: int) -> str:
        barrier.wait()
        try:
            return api.create(feedback(trace, value=i + 1, overrides=base.assessment_id)).assessment_id
        except MlgenaiError as err:
            assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.reason == "INVALID_OVERRIDE", err
            return ""

    with ThreadPoolExecutor(THREADS) as pool:
        results = list(pool.map(override, range(THREADS)))
    winners = [r for r in results if r]
    assert len(winners) == 1
    everything = api.list_all(trace_id=trace)
    assert len(everything) == 2 and [a.assessment_id for a in everything if a.valid] == winners
    assert count_rows(database, "assessments", "overrides IS NOT NULL") == 1


def test_concurrent_overrides_of_the_head_serialize_into_a_chain(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    api.create(feedback(trace, value=0))
    barrier = threading.Barrier(THREADS)

    def override_head(i: int) -> str:
        barrier.wait()
        for _ in range(100):
            head = api.list_all(trace_id=trace, filter="valid = TRUE")
            assert len(head) == 1
            try:
                return api.create(feedback(trace, value=i + 1, overrides=head[0].assessment_id)).assessment_id
            except MlgenaiError as err:
                assert err.reason == "INVALID_OVERRIDE", err  # someone overrode the head first
        raise AssertionError("never got to override the head")

    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(override_head, range(THREADS)))
    chain = api.list_all(trace_id=trace)
    assert len(chain) == THREADS + 1
    assert sum(a.valid for a in chain) == 1
    # A single chain: every assessment but the root overrides a distinct one.
    overridden = [a.overrides for a in chain if a.overrides]
    assert len(overridden) == THREADS == len(set(overridden))
    head = next(a for a in chain if a.valid)
    assert head.assessment_id not in overridden


# -- delete ------------------------------------------------------------------------------------


def test_delete_is_idempotent(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace))
    api.delete(a.assessment_id)
    api.delete(a.assessment_id)
    api.delete("a-" + "f" * 32)
    assert count_rows(database, "assessments") == 0
    expect_error(grpc.StatusCode.NOT_FOUND, "ASSESSMENT_NOT_FOUND", lambda: api.get(a.assessment_id))


def test_deleting_traces_deletes_their_assessments(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    api.batch(feedback(trace), expectation(trace))
    api.traces.DeleteTraces(tpb.DeleteTracesRequest(experiment_id=exp, trace_ids=[trace]))
    assert count_rows(database, "assessments") == 0


# -- update ------------------------------------------------------------------------------------


def test_update_masked_fields(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace, value=0.2, rationale="first", metadata={"a": "1", "b": "2"}))
    change = feedback(trace, name="helpfulness", value="yes", rationale="second", metadata={"b": "3", "c": "4"})
    change.assessment_id = a.assessment_id
    updated = api.update(change, "name", "feedback", "rationale", "metadata")
    assert updated.name == "helpfulness" and value_of(updated) == "yes" and updated.rationale == "second"
    assert dict(updated.metadata) == {"a": "1", "b": "3", "c": "4"}
    assert (
        updated.create_time == a.create_time and updated.update_time.ToMilliseconds() >= a.create_time.ToMilliseconds()
    )
    assert (updated.trace_id, updated.source, updated.valid) == (a.trace_id, a.source, True)
    assert api.get(a.assessment_id) == updated
    # Typed copies follow the value.
    assert api.search(exp, "feedback.helpfulness = 'yes'") == {trace}
    assert api.search(exp, "feedback.correctness IS NOT NULL") == set()
    # Only the masked path changes; rationale can be cleared.
    only = apb.Assessment(assessment_id=a.assessment_id, rationale="", name="ignored-not-masked")
    cleared = api.update(only, "rationale")
    assert cleared.rationale == "" and cleared.name == "helpfulness"


def test_update_feedback_value_to_error_and_back(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace, value=0.9))
    err = feedback(trace, error=apb.AssessmentError(error_code="TIMEOUT"))
    err.assessment_id = a.assessment_id
    got = api.update(err, "feedback")
    assert got.feedback.HasField("error") and not got.feedback.HasField("value")
    assert api.search(exp, "feedback.correctness > 0.5") == set()
    back = feedback(trace, value=0.7)
    back.assessment_id = a.assessment_id
    assert value_of(api.update(back, "feedback")) == 0.7
    assert api.search(exp, "feedback.correctness > 0.5") == {trace}


def test_update_expectation_value(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(expectation(trace, value="41"))
    change = expectation(trace, value=["42", 42])
    change.assessment_id = a.assessment_id
    assert value_of(api.update(change, "expectation")) == ["42", 42]


def test_update_without_mask_changes_what_is_set(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace, value=1, run_id=RUN, span_id="1" * 16, metadata={"x": "1"}))
    # A read-modify-write: immutable fields sent back unchanged are fine; output-only ignored.
    change = apb.Assessment()
    change.CopyFrom(a)
    change.name, change.valid = "renamed", False
    change.metadata["y"] = "2"
    updated = api.update(change)
    assert updated.name == "renamed" and updated.valid and dict(updated.metadata) == {"x": "1", "y": "2"}
    assert value_of(updated) == 1 and updated.run_id == RUN and updated.span_id == "1" * 16


def test_update_output_only_paths_are_ignored(api: Api, exp: str) -> None:
    trace = api.trace(exp, 1)
    a = api.create(feedback(trace))
    change = apb.Assessment(assessment_id=a.assessment_id, valid=False)
    assert api.update(change, "valid", "create_time", "update_time", "assessment_id") == a


def test_update_unknown_assessment(api: Api) -> None:
    change = apb.Assessment(assessment_id="a-" + "2" * 32, name="x")
    expect_error(grpc.StatusCode.NOT_FOUND, "ASSESSMENT_NOT_FOUND", lambda: api.update(change, "name"))
    expect_error(grpc.StatusCode.NOT_FOUND, "ASSESSMENT_NOT_FOUND", lambda: api.update(change))


# -- batch and idempotency ---------------------------------------------------------------------


def test_batch_create_on_many_traces_in_request_order(api: Api, exp: str, database: Database) -> None:
    traces = [api.trace(exp, n) for n in range(1, 4)]
    base = api.create(feedback(traces[0], value=0.1))
    items = [feedback(t, name=f"n{i}", value=i) for i, t in enumerate(traces)]
    items += [expectation(traces[2]), feedback(traces[0], value=0.2, overrides=base.assessment_id)]
    created = api.batch(*items)
    assert [(a.trace_id, a.name) for a in created] == [(m.trace_id, m.name) for m in items]
    assert len({a.assessment_id for a in created}) == len(items)
    assert all(a.valid for a in created) and not api.valid(base.assessment_id)
    assert [api.get(a.assessment_id) for a in created] == created
    assert count_rows(database, "assessments") == len(items) + 1


def test_batch_is_all_or_nothing(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    base = api.create(feedback(trace))
    state = snapshot(database, *TABLES)
    good = [feedback(trace, name=f"n{i}") for i in range(5)]
    missing_trace = feedback(tid(99))
    expect_error(grpc.StatusCode.NOT_FOUND, "TRACE_NOT_FOUND", lambda: api.batch(*good, missing_trace))
    twice = feedback(trace, overrides=base.assessment_id)
    err = expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_OVERRIDE", lambda: api.batch(*good, twice, twice))
    assert [v.field for v in err.violations] == ["assessments[6].overrides"]
    assert snapshot(database, *TABLES) == state
    assert api.valid(base.assessment_id)


def test_batch_of_1000(api: Api, exp: str, database: Database) -> None:
    traces = [api.trace(exp, n) for n in range(1, 11)]
    created = api.batch(*(feedback(traces[i % 10], name=f"m{i % 7}", value=i) for i in range(1_000)))
    assert len(created) == 1_000 and [value_of(a) for a in created] == list(range(1_000))
    assert count_rows(database, "assessments") == 1_000
    assert api.search(exp, "feedback.m0 >= 994") == {traces[4]}  # 994 = 7 * 142, on trace 994 % 10


def test_request_id_makes_create_idempotent(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    rid = str(uuid.uuid4())
    first = api.create(feedback(trace), request_id=rid)
    assert api.create(feedback(trace), request_id=rid) == first
    assert count_rows(database, "assessments") == 1
    # A repeat of an override returns the first result (the retry would otherwise be refused).
    rid2 = str(uuid.uuid4())
    over = api.create(feedback(trace, overrides=first.assessment_id), request_id=rid2)
    assert api.create(feedback(trace, overrides=first.assessment_id), request_id=rid2) == over
    assert count_rows(database, "assessments") == 2
    state = snapshot(database, *TABLES)
    reused = lambda: api.create(feedback(trace, value=False), request_id=rid)  # noqa: E731
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED", reused, field="request_id")
    assert snapshot(database, *TABLES) == state


def test_request_id_makes_batch_idempotent(api: Api, exp: str, database: Database) -> None:
    trace = api.trace(exp, 1)
    rid = str(uuid.uuid4())
    first = api.batch(feedback(trace), expectation(trace), request_id=rid)
    assert api.batch(feedback(trace), expectation(trace), request_id=rid) == first
    assert count_rows(database, "assessments") == 2
    reused = lambda: api.batch(feedback(trace), request_id=rid)  # noqa: E731
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED", reused)
    # The same key on the other RPC is a different request too.
    other = lambda: api.create(feedback(trace), request_id=rid)  # noqa: E731
    expect_error(grpc.StatusCode.INVALID_ARGUMENT, "REQUEST_ID_REUSED", other)
    assert count_rows(database, "assessments") == 2


# -- on traces ---------------------------------------------------------------------------------


def test_trace_reads_return_valid_and_invalid_assessments(api: Api, exp: str) -> None:
    t1, t2 = api.trace(exp, 1), api.trace(exp, 2)
    a = api.create(feedback(t1, value=0.1))
    b = api.create(feedback(t1, value=0.9, overrides=a.assessment_id))
    e = api.create(expectation(t1))
    got = api.traces.GetTrace(tpb.GetTraceRequest(trace_id=t1)).info.assessments
    assert [(x.assessment_id, x.valid) for x in got] == [
        (a.assessment_id, False),
        (b.assessment_id, True),
        (e.assessment_id, True),
    ]
    assert got[1] == api.get(b.assessment_id)
    found = api.traces.SearchTraces(tpb.SearchTracesRequest(experiment_ids=[exp], page_size=10)).traces
    by_id = {t.trace_id: [(x.assessment_id, x.valid) for x in t.assessments] for t in found}
    assert by_id[t1] == [(a.assessment_id, False), (b.assessment_id, True), (e.assessment_id, True)]
    assert by_id[t2] == []
    batch = api.traces.BatchGetTraces(tpb.BatchGetTracesRequest(trace_ids=[t2, t1])).traces
    assert [len(t.info.assessments) for t in batch] == [0, 3]


@pytest.fixture
def scored(api: Api, exp: str) -> dict[str, str]:
    """Traces with a `score` feedback of every type (one overridden) and `answer` expectations."""
    t = {name: api.trace(exp, n) for n, name in enumerate(
        ["high", "low", "true", "yes", "overridden", "none", "no", "false", "answer_num"], start=1
    )}  # fmt: skip
    api.batch(
        feedback(t["high"], "score", 0.9),
        feedback(t["low"], "score", 0.3),
        feedback(t["true"], "score", True),
        feedback(t["yes"], "score", "yes"),
        feedback(t["no"], "score", "no"),
        feedback(t["false"], "score", False),
        expectation(t["none"], "answer", "42"),
        expectation(t["answer_num"], "answer", 42),
        expectation(t["high"], "score", 100),  # an expectation named like the feedback
    )
    old = api.create(feedback(t["overridden"], "score", 0.8))
    api.create(feedback(t["overridden"], "score", 0.1, overrides=old.assessment_id))
    return t


@pytest.mark.parametrize(
    ("filter", "expected"),
    [
        ("feedback.score > 0.5", {"high"}),
        ("feedback.score >= 0.3", {"high", "low"}),
        ("feedback.score < 0.2", {"overridden"}),
        ("feedback.score <= 1", {"high", "low", "overridden"}),
        ("feedback.score = 0.3", {"low"}),
        ("feedback.score = 0.8", set()),  # the overridden value is ignored
        ("feedback.score != 0.3", {"high", "overridden"}),
        ("feedback.score IN (0.3, 0.9)", {"high", "low"}),
        ("feedback.score = 'yes'", {"yes"}),
        ("feedback.score != 'yes'", {"no"}),
        ("feedback.score LIKE 'y%'", {"yes"}),
        ("feedback.score = TRUE", {"true"}),
        ("feedback.score = FALSE", {"false"}),
        ("feedback.score != TRUE", {"false"}),
        ("feedback.score IS NULL", {"none", "answer_num"}),
        ("feedback.score IS NOT NULL", {"high", "low", "true", "yes", "overridden", "no", "false"}),
        ("expectation.answer = '42'", {"none"}),
        ("expectation.answer = 42", {"answer_num"}),
        ("expectation.answer IS NOT NULL", {"none", "answer_num"}),
        ("expectation.score > 50", {"high"}),
        ("feedback.answer IS NOT NULL", set()),
        ("feedback.score > 0.5 OR expectation.answer = '42'", {"high", "none"}),
        ("NOT feedback.score > 0.5", {"low", "true", "yes", "overridden", "none", "no", "false", "answer_num"}),
        ("NOT (feedback.score = TRUE OR feedback.score = 'yes') AND feedback.score IS NOT NULL",
         {"high", "low", "overridden", "no", "false"}),
        ("feedback.`score` > 0.5 AND expectation.score = 100", {"high"}),
    ],
)  # fmt: skip
def test_search_traces_by_assessment(
    api: Api, exp: str, scored: dict[str, str], filter: str, expected: set[str]
) -> None:
    assert api.search(exp, filter) == {scored[name] for name in expected}


# -- ListAssessments ---------------------------------------------------------------------------


@pytest.fixture
def listed(api: Api, exp: str) -> dict[str, Any]:
    """Two experiments; assessments of several names, sources, kinds and runs."""
    other = api.experiment("other")
    t1, t2, t3 = api.trace(exp, 1), api.trace(exp, 2), api.trace(other, 3)
    human = apb.AssessmentSource(source_type=HUMAN, source_id="bob")
    first = api.batch(
        feedback(t1, "quality", 1, run_id=RUN),
        feedback(t1, "quality", 0, run_id=RUN, source=human),
        expectation(t1, "answer", "x"),
        feedback(t2, "quality", 0.5, run_id=OTHER_RUN),
        feedback(t3, "quality", 0.7, run_id=RUN),
    )
    second = api.batch(
        feedback(t2, "safety", True, run_id=RUN, overrides=first[3].assessment_id),
        expectation(t2, "answer", "y", source=human),
    )
    return {"all": first + second, "t1": [t1], "t2": [t2], "t3": [t3]}


def ids(items: list[apb.Assessment]) -> list[str]:
    return [a.assessment_id for a in items]


def ordered(items: list[apb.Assessment]) -> list[str]:
    return ids(sorted(items, key=lambda a: (a.create_time.ToMilliseconds(), a.assessment_id)))


def test_list_by_trace_run_and_experiment(api: Api, exp: str, listed: dict[str, Any]) -> None:
    everything = listed["all"]
    t1, t2 = listed["t1"][0], listed["t2"][0]
    by_trace = api.list_all(trace_id=t1)
    assert ids(by_trace) == ordered([a for a in everything if a.trace_id == t1])
    assert by_trace[0] == api.get(by_trace[0].assessment_id)
    assert ids(api.list_all(run_id=RUN)) == ordered([a for a in everything if a.run_id == RUN])
    in_exp = [a for a in everything if a.trace_id in (t1, t2)]
    assert ids(api.list_all(experiment_id=exp)) == ordered(in_exp)
    assert api.list_all(trace_id=tid(77)) == [] and api.list_all(experiment_id="424242") == []
    assert api.list_all(run_id="9" * 32) == []


def judged(a: apb.Assessment) -> bool:
    return a.source.source_type == JUDGE


def safety(a: apb.Assessment) -> bool:
    return a.name == "safety"


def expected(a: apb.Assessment) -> bool:
    return a.WhichOneof("value") == "expectation"


@pytest.mark.parametrize(
    ("filter", "predicate"),
    [
        ("name = 'quality'", lambda a: a.name == "quality"),
        ("name LIKE 'qual%' AND valid = TRUE", lambda a: a.name == "quality" and a.valid),
        ("valid = FALSE", lambda a: not a.valid),
        ("kind = 'expectation'", lambda a: a.WhichOneof("value") == "expectation"),
        ("kind = 'FEEDBACK'", lambda a: a.WhichOneof("value") == "feedback"),
        ("source_type = 'HUMAN'", lambda a: a.source.source_type == HUMAN),
        ("source_type = 'llm_judge' AND NOT name = 'safety'", lambda a: judged(a) and not safety(a)),
        ("source_id = 'bob'", lambda a: a.source.source_id == "bob"),
        ("source.source_id != 'bob' OR kind = 'expectation'", lambda a: a.source.source_id != "bob" or expected(a)),
    ],
)  # fmt: skip
def test_list_filters(api: Api, exp: str, listed: dict[str, Any], filter: str, predicate: Any) -> None:
    in_exp = api.list_all(experiment_id=exp)
    expected = [a.assessment_id for a in in_exp if predicate(a)]
    assert expected, "the fixture should make every filter match something"
    assert ids(api.list_all(experiment_id=exp, filter=filter)) == expected


def test_list_filter_on_create_time(api: Api, exp: str, listed: dict[str, Any]) -> None:
    everything = api.list_all(experiment_id=exp)
    cut = everything[3].create_time.ToMilliseconds()
    later = [a.assessment_id for a in everything if a.create_time.ToMilliseconds() >= cut]
    assert ids(api.list_all(experiment_id=exp, filter=f"create_time >= {cut}")) == later
    assert api.list_all(experiment_id=exp, filter="create_time < 0") == []
    assert ids(api.list_all(experiment_id=exp, filter="create_time > '2020-01-01T00:00:00Z'")) == ids(everything)


@pytest.mark.parametrize("page_size", [1, 2, 3, 1000])
def test_list_pages(api: Api, exp: str, listed: dict[str, Any], page_size: int) -> None:
    everything = ids(api.list_all(experiment_id=exp))
    assert len(everything) == 6
    pages = []
    token = ""
    while True:
        page = api.list(experiment_id=exp, page_size=page_size, page_token=token)
        assert len(page.assessments) <= page_size
        pages.append(ids(list(page.assessments)))
        token = page.next_page_token
        if not token:
            break
    assert [x for p in pages for x in p] == everything
    assert len(pages) == -(-6 // page_size)


def test_list_pages_while_assessments_are_added(api: Api, exp: str, listed: dict[str, Any]) -> None:
    trace = listed["t1"][0]
    first = api.list(experiment_id=exp, page_size=4)
    api.batch(*(feedback(trace, f"late{i}") for i in range(3)))
    rest = api.list_all(experiment_id=exp, page_size=4, page_token=first.next_page_token)
    seen = ids(list(first.assessments)) + ids(rest)
    assert len(seen) == len(set(seen)) == 9


def test_list_page_token_is_bound_to_scope_and_filter(api: Api, exp: str, listed: dict[str, Any]) -> None:
    token = api.list(experiment_id=exp, page_size=1).next_page_token
    invalid = grpc.StatusCode.INVALID_ARGUMENT
    for request in (
        {"experiment_id": exp, "filter": "valid = TRUE"},
        {"trace_id": listed["t1"][0]},
        {"run_id": RUN},
    ):
        expect_error(invalid, "INVALID_PAGE_TOKEN", lambda r=request: api.list(page_token=token, **r))  # type: ignore[misc]
