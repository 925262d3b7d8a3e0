"""The client's conversions. ``to_value``/``to_struct``: JSON-like values, each with its kind.
``to_dict``: every field of a message as plain Python, by the shape of each field (scalar,
optional, oneof member, message, repeated, map) and its type (enum, well-known type), the same
on the first call for a message type as on later ones."""

from __future__ import annotations

import datetime as dt
import math
from typing import Any

import pytest
from google.protobuf import duration_pb2, timestamp_pb2

from mlgenai.client.convert import from_struct, from_value, to_dict, to_struct, to_value
from mlgenai.v1 import (
    analytics_service_pb2 as anpb,
    assessment_pb2,
    span_pb2,
    trace_pb2,
)

T = dt.datetime(2026, 1, 2, 3, 4, 5, 678_000, tzinfo=dt.UTC)


def _ts(when: dt.datetime) -> timestamp_pb2.Timestamp:
    out = timestamp_pb2.Timestamp()
    out.FromDatetime(when)
    return out


def test_scalars_enums_oneofs_maps_and_timestamps_of_an_assessment() -> None:
    msg = assessment_pb2.Assessment(
        assessment_id="a-1",
        trace_id="tr-1",
        name="quality",
        source=assessment_pb2.AssessmentSource(source_type=assessment_pb2.ASSESSMENT_SOURCE_TYPE_HUMAN, source_id="me"),
        feedback=assessment_pb2.Feedback(value=to_value({"score": 2, "ok": True})),
        metadata={"k": "v"},
        create_time=_ts(T),
    )
    for _ in range(2):  # the first call works out the message type's plan, the second uses it
        got = to_dict(msg)
        assert got["assessment_id"] == "a-1" and got["span_id"] == ""
        assert got["source"] == {"source_type": "HUMAN", "source_id": "me"}
        assert got["feedback"] == {"value": {"score": 2, "ok": True}, "error": None}
        assert got["expectation"] is None  # the other member of the oneof
        assert got["metadata"] == {"k": "v"} and type(got["metadata"]) is dict
        assert got["create_time"] == T and got["update_time"] is None  # an unset timestamp
        assert got["valid"] is False


def test_repeated_messages_and_the_zero_span_status_is_unset() -> None:
    span = span_pb2.Span(
        span_id="s",
        status=span_pb2.SpanStatus(code=span_pb2.SPAN_STATUS_CODE_UNSPECIFIED),
        attributes=to_struct({"n": 1, "xs": [1.5, None, "a"]}),
        events=[span_pb2.SpanEvent(name="e", time_unix_nano=7, attributes=to_struct({}))],
    )
    got = to_dict(trace_pb2.Trace(spans=[span, span_pb2.Span(status=span_pb2.SpanStatus(code=2))]))
    assert got["info"] is None
    first, second = got["spans"]
    assert first["status"] == {"code": "UNSET", "message": ""}
    assert second["status"]["code"] == "ERROR"
    assert first["attributes"] == {"n": 1, "xs": [1.5, None, "a"]}
    assert first["events"] == [{"name": "e", "time_unix_nano": 7, "attributes": {}}]
    assert first["inputs"] is None  # an unset Value


def test_an_enum_number_without_a_name_is_its_number() -> None:
    got = to_dict(span_pb2.SpanStatus(code=7))  # type: ignore[arg-type]
    assert got == {"code": "7", "message": ""}


def test_optional_scalars_maps_of_numbers_repeated_scalars_and_durations() -> None:
    summary = anpb.AssessmentSummary(name="q", count=3, mean=0.0)
    assert to_dict(summary) == {
        "name": "q", "count": 3, "numeric_count": 0, "mean": 0.0, "min": None, "max": None,
        "p50": None, "p90": None, "pass_rate": None, "error_count": 0,
    }  # fmt: skip
    point = to_dict(anpb.MetricDataPoint(dimensions={"status": "OK"}, values={"count": 2.0}))
    assert point == {"dimensions": {"status": "OK"}, "values": {"count": 2.0}, "time_bucket_start": None}
    request = anpb.QueryTraceMetricsRequest(dimensions=["a", "b"], time_bucket=duration_pb2.Duration(seconds=90))
    got = to_dict(request)
    assert got["dimensions"] == ["a", "b"] and type(got["dimensions"]) is list
    assert got["time_bucket"] == dt.timedelta(seconds=90)
    assert got["start_time"] is None


def test_json_like_values_round_trip_with_their_kinds() -> None:
    value: dict[str, Any] = {
        "s": "text", "n": 3, "f": 2.5, "t": True, "none": None, "empty_list": [], "empty_dict": {},
        "nested": {"xs": [1, [2, {"y": None}], ()], "tuple": ("a", 1)},
    }  # fmt: skip
    struct = to_struct(value)
    assert from_struct(struct) == value | {"nested": {"xs": [1, [2, {"y": None}], []], "tuple": ["a", 1]}}
    fields = struct.fields
    assert fields["empty_list"].WhichOneof("kind") == "list_value"
    assert fields["empty_dict"].WhichOneof("kind") == "struct_value"
    assert fields["none"].WhichOneof("kind") == "null_value"
    assert fields["t"].WhichOneof("kind") == "bool_value" and fields["n"].WhichOneof("kind") == "number_value"
    assert from_value(to_value([])) == [] and to_value({}).WhichOneof("kind") == "struct_value"


@pytest.mark.parametrize(
    ("value", "error"),
    [(math.nan, ValueError), ({"x": [math.inf]}, ValueError), ({1: "a"}, TypeError), ([object()], TypeError)],
)
def test_values_json_cannot_hold_are_refused(value: Any, error: type[Exception]) -> None:
    with pytest.raises(error):
        to_value(value)


@pytest.mark.parametrize(
    ("seconds", "nanos"),
    [
        (1, 0),
        (0, 1),
        (0, 999),  # below a microsecond: truncated, not rounded
        (1_700_000_000, 999_999_999),
        (-1, 999_999_999),  # before the epoch
        (-62_135_596_800, 0),  # 0001-01-01, the smallest valid Timestamp
        (253_402_300_799, 999_999_999),  # 9999-12-31T23:59:59.999999999, the largest
    ],
)
def test_timestamps_read_as_protobuf_reads_them(seconds: int, nanos: int) -> None:
    """``to_dict``'s own Timestamp reading gives what ``Timestamp.ToDatetime`` gives in UTC."""
    ts = timestamp_pb2.Timestamp(seconds=seconds, nanos=nanos)
    got = to_dict(trace_pb2.TraceInfo(request_time=ts))["request_time"]
    want = ts.ToDatetime(tzinfo=dt.UTC)
    assert got == want and got.tzinfo == want.tzinfo and repr(got) == repr(want)
