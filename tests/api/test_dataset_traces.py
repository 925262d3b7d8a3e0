"""CreateRecordsFromTraces (SPEC §5.6): records from root spans and valid expectations."""

from __future__ import annotations

import os
import time
from typing import Any

import grpc

from mlgenai.client import Client, to_value
from mlgenai.v1 import assessment_pb2, assessment_service_pb2 as apb, span_pb2, trace_service_pb2 as tpb
from store.uow import Database
from tests.api.dataset_support import DATASET_TABLES
from tests.helpers import expect_error, snapshot


def trace_id() -> str:
    return "tr-" + os.urandom(16).hex()


def log_trace(client: Client, experiment_id: str, inputs: Any, outputs: Any = None, session: str = "") -> str:
    """A trace with a root span (``inputs``/``outputs``) and one child span."""
    tid, root_id, start = trace_id(), os.urandom(8).hex(), time.time_ns()
    root = span_pb2.Span(
        trace_id=tid, span_id=root_id, name="agent", start_time_unix_nano=start, end_time_unix_nano=start + 10
    )
    if inputs is not None:
        root.inputs.CopyFrom(to_value(inputs))
    if outputs is not None:
        root.outputs.CopyFrom(to_value(outputs))
    if session:
        root.attributes.update({"session.id": session})
    child = span_pb2.Span(
        trace_id=tid, span_id=os.urandom(8).hex(), parent_span_id=root_id, name="llm", start_time_unix_nano=start + 1
    )
    child.inputs.CopyFrom(to_value({"prompt": "not the root"}))
    client.traces.LogSpans(tpb.LogSpansRequest(experiment_id=experiment_id, spans=[root, child]))
    return tid


def expect(client: Client, tid: str, name: str, value: Any, overrides: str = "") -> str:
    item = assessment_pb2.Assessment(
        trace_id=tid,
        name=name,
        source=assessment_pb2.AssessmentSource(
            source_type=assessment_pb2.ASSESSMENT_SOURCE_TYPE_HUMAN, source_id="ann"
        ),
        expectation=assessment_pb2.Expectation(value=to_value(value)),
        overrides=overrides,
    )
    return str(client.assessments.CreateAssessment(apb.CreateAssessmentRequest(assessment=item)).assessment_id)


def feedback(client: Client, tid: str, name: str, value: Any) -> None:
    item = assessment_pb2.Assessment(
        trace_id=tid,
        name=name,
        source=assessment_pb2.AssessmentSource(source_type=assessment_pb2.ASSESSMENT_SOURCE_TYPE_CODE),
        feedback=assessment_pb2.Feedback(value=to_value(value)),
    )
    client.assessments.CreateAssessment(apb.CreateAssessmentRequest(assessment=item))


def test_records_come_from_root_spans_and_valid_expectations(client: Client) -> None:
    exp = client.create_experiment("from-traces")["experiment_id"]
    t1 = log_trace(client, exp, {"question": "2+2?", "n": 2.0}, {"answer": "4"}, session="s-1")
    t2 = log_trace(client, exp, {"question": "capital of France?"}, "Paris")
    old = expect(client, t1, "expected_response", "five")
    expect(client, t1, "expected_response", "4", overrides=old)  # the overridden one is invalid
    expect(client, t1, "expected_facts", ["2+2=4"])
    feedback(client, t1, "correctness", 1)  # feedback is not an expectation
    ds = client.create_dataset("from traces", experiment_ids=[exp])["dataset_id"]
    result = client.create_records_from_traces(ds, [t1, t2])
    assert [r["outcome"] for r in result["results"]] == ["CREATED", "CREATED"]
    assert result["version"] == 1
    first, second = client.iter_records(ds)
    assert first["inputs"] == {"question": "2+2?", "n": 2} and first["outputs"] == {"answer": "4"}
    assert first["expectations"] == {"expected_response": "4", "expected_facts": ["2+2=4"]}
    assert first["source"] == {"source_type": "TRACE", "source_data": {"trace_id": t1, "session_id": "s-1"}}
    assert second["outputs"] == "Paris" and second["expectations"] == {}
    assert second["source"] == {"source_type": "TRACE", "source_data": {"trace_id": t2}}
    again = client.create_records_from_traces(ds, [t2, t1])
    assert [r["outcome"] for r in again["results"]] == ["UNCHANGED", "UNCHANGED"] and again["version"] == 1
    expect(client, t2, "expected_response", "Paris")
    updated = client.create_records_from_traces(ds, [t2])
    assert [r["outcome"] for r in updated["results"]] == ["UPDATED"]
    assert list(client.iter_records(ds))[1]["expectations"] == {"expected_response": "Paris"}


def test_same_inputs_as_a_merged_record_merge_into_it(client: Client) -> None:
    exp = client.create_experiment("from-traces-merge")["experiment_id"]
    ds = client.create_dataset("mixed")["dataset_id"]
    merged = client.merge_records(ds, [{"inputs": {"q": "hi"}, "tags": {"by": "hand"}}])
    tid = log_trace(client, exp, {"q": "hi"}, "hello")
    result = client.create_records_from_traces(ds, [tid])
    assert result["results"][0] == {
        "dataset_record_id": merged["results"][0]["dataset_record_id"],
        "outcome": "UPDATED",
    }
    (record,) = client.iter_records(ds)
    assert record["outputs"] == "hello" and record["source"]["source_type"] == "CODE"  # source never changes


def test_a_trace_without_root_inputs_is_refused(client: Client, database: Database) -> None:
    exp = client.create_experiment("no-inputs")["experiment_id"]
    ds = client.create_dataset("strict")["dataset_id"]
    no_inputs = log_trace(client, exp, None, "out")
    scalar_inputs = log_trace(client, exp, "just text", "out")
    good = log_trace(client, exp, {"q": 1})
    before = snapshot(database, *DATASET_TABLES)
    for bad in (no_inputs, scalar_inputs):
        err = expect_error(
            grpc.StatusCode.FAILED_PRECONDITION,
            "TRACE_HAS_NO_INPUTS",
            lambda b=bad: client.create_records_from_traces(ds, [good, b]),
        )
        assert err.metadata["trace_id"] == bad
    assert snapshot(database, *DATASET_TABLES) == before
