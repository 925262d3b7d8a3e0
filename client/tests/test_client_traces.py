"""Trace and assessment helpers: message building without a server."""

from __future__ import annotations

from mlgenai.client import assessment, new_span_id, new_trace_id, span, to_dict
from mlgenai.client._traces import span_to_proto


def test_ids_have_the_documented_shape() -> None:
    tid, sid = new_trace_id(), new_span_id()
    assert tid.startswith("tr-") and len(tid) == 35 and int(tid[3:], 16) >= 0
    assert len(sid) == 16 and int(sid, 16) >= 0


def test_span_dicts_round_trip_through_the_proto() -> None:
    root = span("tr-" + "a" * 32, "agent", inputs={"q": "hi"}, outputs="hello", attributes={"k": 1})
    child = span(root["trace_id"], "llm", parent=root, status="ERROR", status_message="boom")
    proto = span_to_proto(child)
    assert proto.parent_span_id == root["span_id"]
    back = to_dict(span_to_proto(root))
    assert back["inputs"] == {"q": "hi"} and back["outputs"] == "hello" and back["attributes"] == {"k": 1}
    assert back["status"] == {"code": "OK", "message": ""}
    assert to_dict(proto)["status"] == {"code": "ERROR", "message": "boom"}


def test_assessment_messages() -> None:
    fb = assessment("tr-" + "b" * 32, "correctness", 0.9, source_type="LLM_JUDGE", source_id="gpt")
    assert fb.WhichOneof("value") == "feedback" and fb.feedback.value.number_value == 0.9
    ex = assessment("tr-" + "b" * 32, "expected", {"answer": 42}, kind="expectation")
    assert ex.WhichOneof("value") == "expectation"
    err = assessment("tr-" + "b" * 32, "judge", error={"error_code": "RATE_LIMIT", "error_message": "slow down"})
    assert err.feedback.error.error_code == "RATE_LIMIT" and not err.feedback.HasField("value")
