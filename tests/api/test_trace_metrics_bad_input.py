"""QueryTraceMetrics rejects bad input (INVALID_ARGUMENT, one field violation per problem).

The RPC only reads, so there is nothing to check in the tables afterwards.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from google.protobuf.duration_pb2 import Duration

from mlgenai.client import Client
from mlgenai.v1 import analytics_service_pb2 as pb
from tests.api.metrics_support import ASSESSMENTS, AVG, COUNT, MAX, MIN, PCT, SPANS, SUM, TRACES, agg, stamp
from tests.helpers import expect_error

INVALID = grpc.StatusCode.INVALID_ARGUMENT


def _request(**fields: Any) -> pb.QueryTraceMetricsRequest:
    fields.setdefault("experiment_ids", ["0"])
    fields.setdefault("view", TRACES)
    fields.setdefault("metric_name", "latency")
    fields.setdefault("aggregations", [agg(AVG)])
    return pb.QueryTraceMetricsRequest(**fields)


def test_a_valid_request_passes(client: Client) -> None:
    response = client.analytics.QueryTraceMetrics(_request())
    assert list(response.data_points) == []


BAD: list[tuple[str, dict[str, Any], str]] = [
    ("no experiment", {"experiment_ids": []}, "experiment_ids"),
    ("too many experiments", {"experiment_ids": [str(i) for i in range(101)]}, "experiment_ids"),
    ("empty experiment id", {"experiment_ids": ["0", ""]}, "experiment_ids[1]"),
    ("malformed experiment id", {"experiment_ids": ["abc"]}, "experiment_ids[0]"),
    ("experiment id beyond 64 bits", {"experiment_ids": [str(2**63)]}, "experiment_ids[0]"),
    ("no view", {"view": 0}, "view"),
    ("unknown view", {"view": 9}, "view"),
    ("no metric", {"metric_name": ""}, "metric_name"),
    ("unknown metric", {"metric_name": "cost"}, "metric_name"),
    ("metric of another view", {"metric_name": "span_count"}, "metric_name"),
    ("spans metric on assessments", {"view": ASSESSMENTS, "metric_name": "latency"}, "metric_name"),
    ("no aggregation", {"aggregations": []}, "aggregations"),
    ("eleven aggregations", {"aggregations": [agg(PCT, p) for p in range(11)]}, "aggregations"),
    ("unspecified aggregation", {"aggregations": [agg(0)]}, "aggregations[0].type"),
    ("unknown aggregation", {"aggregations": [agg(AVG), agg(42)]}, "aggregations[1].type"),
    ("SUM of a count", {"metric_name": "trace_count", "aggregations": [agg(SUM)]}, "aggregations[0].type"),
    ("AVG of a count", {"view": SPANS, "metric_name": "span_count", "aggregations": [agg(AVG)]},
     "aggregations[0].type"),
    ("percentile of a count", {"metric_name": "session_count", "aggregations": [agg(PCT, 50)]},
     "aggregations[0].type"),
    ("SUM of latency", {"aggregations": [agg(SUM)]}, "aggregations[0].type"),
    ("SUM of span latency", {"view": SPANS, "aggregations": [agg(SUM)]}, "aggregations[0].type"),
    ("SUM of assessment values", {"view": ASSESSMENTS, "metric_name": "assessment_value",
                                  "aggregations": [agg(SUM)]}, "aggregations[0].type"),
    ("percentile below 0", {"aggregations": [agg(PCT, -0.5)]}, "aggregations[0].percentile"),
    ("percentile above 100", {"aggregations": [agg(PCT, 100.01)]}, "aggregations[0].percentile"),
    ("percentile NaN", {"aggregations": [agg(PCT, float("nan"))]}, "aggregations[0].percentile"),
    ("percentile on MAX", {"aggregations": [agg(MAX, 50)]}, "aggregations[0].percentile"),
    ("duplicate aggregation", {"aggregations": [agg(MIN), agg(MAX), agg(MIN)]}, "aggregations[2]"),
    ("duplicate percentile", {"aggregations": [agg(PCT, 95), agg(PCT, 95.0)]}, "aggregations[1]"),
    ("six dimensions", {"metric_name": "trace_count", "aggregations": [agg(COUNT)],
                        "dimensions": ["trace_name", "trace_status", "model_id", "run_id", "session_id", "user_id"]},
     "dimensions"),
    ("unknown dimension", {"dimensions": ["model_id", "colour"]}, "dimensions[1]"),
    ("dimension of another view", {"dimensions": ["span_name"]}, "dimensions[0]"),
    ("time_bucket is not a dimension", {"dimensions": ["time_bucket"]}, "dimensions[0]"),
    ("session_id is not a span dimension", {"view": SPANS, "dimensions": ["session_id"]}, "dimensions[0]"),
    ("duplicate dimension", {"dimensions": ["model_id", "model_id"]}, "dimensions[1]"),
    ("start after end", {"start_time": stamp(2_000), "end_time": stamp(1_000)}, "end_time"),
    ("start equals end", {"start_time": stamp(1_000), "end_time": stamp(1_000)}, "end_time"),
    ("zero bucket", {"time_bucket": Duration(seconds=0)}, "time_bucket"),
    ("negative bucket", {"time_bucket": Duration(seconds=-60)}, "time_bucket"),
    ("fractional bucket", {"time_bucket": Duration(seconds=1, nanos=500_000_000)}, "time_bucket"),
    ("sub-second bucket", {"time_bucket": Duration(nanos=500_000_000)}, "time_bucket"),
    ("negative max_data_points", {"max_data_points": -1}, "max_data_points"),
    ("filter too long", {"filter": "name = '" + "x" * 10_000 + "'"}, "filter"),
]  # fmt: skip


@pytest.mark.parametrize(("case", "fields", "field"), BAD, ids=[b[0] for b in BAD])
def test_invalid_field(client: Client, case: str, fields: dict[str, Any], field: str) -> None:
    expect_error(INVALID, "INVALID_FIELD", lambda: client.analytics.QueryTraceMetrics(_request(**fields)), field)


def test_every_problem_is_reported_at_once(client: Client) -> None:
    request = _request(experiment_ids=["x"], aggregations=[agg(SUM)], dimensions=["nope"], max_data_points=-5)
    err = expect_error(INVALID, "INVALID_FIELD", lambda: client.analytics.QueryTraceMetrics(request))
    fields = {v.field for v in err.violations}
    assert fields == {"experiment_ids[0]", "aggregations[0].type", "dimensions[0]", "max_data_points"}


@pytest.mark.parametrize(
    "text",
    [
        "colour = 'red'",  # unknown key
        "attributes.model_id = ",  # malformed
        "span.name > 3",  # wrong comparator and type
        "feedback.score = 'a' AND (",
        "trace.status = 'DONE'",  # not a state
    ],
)
def test_invalid_filter(client: Client, text: str) -> None:
    request = _request(filter=text)
    expect_error(INVALID, "INVALID_FILTER", lambda: client.analytics.QueryTraceMetrics(request), "filter")


def test_client_helper_rejects_unknown_names(client: Client) -> None:
    with pytest.raises(ValueError):
        client.query_trace_metrics(["0"], "RUNS", "latency")
    with pytest.raises(ValueError):
        client.query_trace_metrics(["0"], "TRACES", "latency", ["MEDIAN"])
