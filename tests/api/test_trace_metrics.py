"""AnalyticsService.QueryTraceMetrics (SPEC §9) on both databases.

A small hand-made experiment (``world``) with exact expected numbers for every view, metric,
aggregation and dimension, time buckets, filter, time range, empty results and truncation;
then seeded random data compared with a brute-force computation (``metrics_support.reference``).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from typing import Any

import pytest
from google.protobuf.duration_pb2 import Duration

from mlgenai.client import Client
from mlgenai.v1 import analytics_service_pb2 as pb
from tests.api.metrics_support import (
    ASSESSMENTS,
    AVG,
    COUNT,
    HOUR_MS,
    MAX,
    MIN,
    PCT,
    SPANS,
    SUM,
    TRACES,
    Writer,
    agg,
    assert_same,
    assessment,
    reference,
    rows_of,
    span,
    stamp,
    tid,
)

DAY0 = 1_749_945_600_000  # 2025-06-15T00:00:00Z
RUN = "0123456789abcdef" * 2


@dataclass
class World:
    client: Client
    exp: str
    other: str

    def query(self, view: int, metric: str, *aggs: pb.Aggregation, **fields: Any) -> pb.QueryTraceMetricsResponse:
        fields.setdefault("experiment_ids", [self.exp])
        request = pb.QueryTraceMetricsRequest(view=view, metric_name=metric, aggregations=aggs, **fields)  # type: ignore[arg-type]
        return self.client.analytics.QueryTraceMetrics(request)

    def points(self, view: int, metric: str, *aggs: pb.Aggregation, **fields: Any) -> list[tuple[dict[str, Any], Any]]:
        return [(dict(p.dimensions), dict(p.values)) for p in self.query(view, metric, *aggs, **fields).data_points]


def _meta(model: str = "", session: str = "", user: str = "", run: str = "") -> dict[str, str]:
    pairs = {"mlflow.modelId": model, "mlflow.trace.session": session, "mlflow.trace.user": user,
             "mlflow.sourceRun": run}  # fmt: skip
    return {k: v for k, v in pairs.items() if v}


@pytest.fixture
def world(client: Client) -> World:
    """Five traces over two days; spans on traces 1–3; assessments on traces 1 and 3."""
    w = Writer(client)
    exp, other = w.experiment("metrics"), w.experiment("empty")
    h = HOUR_MS
    w.trace(exp, 1, DAY0 + h, 100, name="chat", metadata=_meta("m1", "s1", "u1", RUN))
    w.trace(exp, 2, DAY0 + h + h // 2, 300, state="ERROR", name="chat", metadata=_meta("m1", "s1"))
    w.trace(exp, 3, DAY0 + 2 * h + 600_000, 200, name="search", metadata=_meta("m2", "s2", "u2"))
    w.trace(exp, 4, DAY0 + 26 * h, 50, name="chat", metadata=_meta("m2"))
    w.trace(exp, 5, DAY0 + 3 * h, state="IN_PROGRESS")
    t1, t2, t3 = DAY0 + h, DAY0 + h + h // 2, DAY0 + 2 * h + 600_000
    usage = "mlflow.chat.tokenUsage"
    w.spans(exp, [
        span(tid(1), 1, name="agent", kind="AGENT", start_ms=t1, end_ms=t1 + 100, status="OK",
             attrs={usage: {"input_tokens": 10, "output_tokens": 5}}),
        span(tid(1), 2, name="llm", kind="LLM", start_ms=t1 + 10, end_ms=t1 + 60, status="OK", parent=f"{1:016x}"),
        span(tid(1), 3, name="tool", kind="TOOL", start_ms=t1 + 60, status="ERROR", parent=f"{1:016x}"),
        span(tid(2), 4, name="llm", kind="LLM", start_ms=t2, end_ms=t2 + 20, status="ERROR",
             attrs={usage: {"input_tokens": 7, "output_tokens": 3}}),
        span(tid(3), 5, name="agent", kind="AGENT", start_ms=t3, end_ms=t3 + 200, status="OK",
             attrs={usage: {"input_tokens": 20, "output_tokens": 10, "total_tokens": 30}}),
        span(tid(3), 6, name="llm", kind="LLM", start_ms=t3 + 5, end_ms=t3 + 5.5, parent=f"{5:016x}"),
    ])  # fmt: skip
    first = w.assess([
        assessment(tid(1), "correct", True, source="LLM_JUDGE", run_id=RUN),
        assessment(tid(1), "score", 0.8, run_id=RUN),
        assessment(tid(1), "relevant", "Yes", source="HUMAN"),
        assessment(tid(1), "expected", "42", kind="expectation", source="HUMAN"),
        assessment(tid(1), "correct", error=True, source="LLM_JUDGE", run_id=RUN),
        assessment(tid(3), "correct", False, source="LLM_JUDGE"),
        assessment(tid(3), "score", 0.4),
        assessment(tid(3), "relevant", "no", source="HUMAN"),
        assessment(tid(3), "relevant", "maybe", source="HUMAN"),
    ])  # fmt: skip
    w.assess([assessment(tid(3), "score", 0.6, overrides=first[6].assessment_id)])  # 0.4 becomes invalid
    return World(client, exp, other)


# -- TRACES ----------------------------------------------------------------------------------


def test_trace_count_by_status(world: World) -> None:
    assert world.points(TRACES, "trace_count", agg(COUNT), dimensions=["trace_status"]) == [
        ({"trace_status": "ERROR"}, {"COUNT": 1}),
        ({"trace_status": "IN_PROGRESS"}, {"COUNT": 1}),
        ({"trace_status": "OK"}, {"COUNT": 3}),
    ]


def test_trace_count_without_dimensions(world: World) -> None:
    assert world.points(TRACES, "trace_count", agg(COUNT)) == [({}, {"COUNT": 5})]


def test_trace_latency_every_aggregation(world: World) -> None:
    aggs = [agg(COUNT), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 50), agg(PCT, 95), agg(PCT, 0), agg(PCT, 100)]
    # Durations 50, 100, 200, 300 (the running trace has none).
    assert world.points(TRACES, "latency", *aggs) == [
        ({}, {"COUNT": 4, "AVG": 162.5, "MIN": 50, "MAX": 300, "P50.0": 150, "P95.0": 285, "P0.0": 50, "P100.0": 300})
    ]


def test_trace_latency_per_model_skips_traces_without_duration(world: World) -> None:
    assert world.points(TRACES, "latency", agg(AVG), agg(PCT, 99.9), dimensions=["model_id"]) == [
        ({"model_id": "m1"}, {"AVG": 200, "P99.9": pytest.approx(299.8)}),
        ({"model_id": "m2"}, {"AVG": 125, "P99.9": pytest.approx(199.85)}),
    ]


def test_session_count_counts_distinct_sessions_and_keeps_groups_without(world: World) -> None:
    assert world.points(TRACES, "session_count", agg(COUNT)) == [({}, {"COUNT": 2})]
    assert world.points(TRACES, "session_count", agg(COUNT), dimensions=["model_id"]) == [
        ({"model_id": ""}, {"COUNT": 0}),
        ({"model_id": "m1"}, {"COUNT": 1}),
        ({"model_id": "m2"}, {"COUNT": 1}),
    ]


@pytest.mark.parametrize(
    ("metric", "expected"),
    [
        ("input_tokens", {"COUNT": 3, "SUM": 37, "AVG": 37 / 3, "MIN": 7, "MAX": 20, "P50.0": 10}),
        ("output_tokens", {"COUNT": 3, "SUM": 18, "AVG": 6, "MIN": 3, "MAX": 10, "P50.0": 5}),
        ("total_tokens", {"COUNT": 3, "SUM": 55, "AVG": 55 / 3, "MIN": 10, "MAX": 30, "P50.0": 15}),
    ],
)
def test_token_metrics(world: World, metric: str, expected: dict[str, float]) -> None:
    aggs = [agg(COUNT), agg(SUM), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 50)]
    assert world.points(TRACES, metric, *aggs) == [({}, pytest.approx(expected))]


@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        ("trace_name", {"": 1, "chat": 3, "search": 1}),
        ("model_id", {"": 1, "m1": 2, "m2": 2}),
        ("run_id", {"": 4, RUN: 1}),
        ("session_id", {"": 2, "s1": 2, "s2": 1}),
        ("user_id", {"": 3, "u1": 1, "u2": 1}),
    ],
)
def test_trace_dimensions(world: World, dimension: str, expected: dict[str, int]) -> None:
    points = world.points(TRACES, "trace_count", agg(COUNT), dimensions=[dimension])
    assert points == [({dimension: k}, {"COUNT": v}) for k, v in expected.items()]


def test_order_is_time_bucket_then_dimensions_in_request_order(world: World) -> None:
    day = Duration(seconds=86_400)
    points = world.points(TRACES, "trace_count", agg(COUNT), dimensions=["trace_status", "model_id"], time_bucket=day)
    assert points == [
        ({"time_bucket": "2025-06-15T00:00:00Z", "trace_status": "ERROR", "model_id": "m1"}, {"COUNT": 1}),
        ({"time_bucket": "2025-06-15T00:00:00Z", "trace_status": "IN_PROGRESS", "model_id": ""}, {"COUNT": 1}),
        ({"time_bucket": "2025-06-15T00:00:00Z", "trace_status": "OK", "model_id": "m1"}, {"COUNT": 1}),
        ({"time_bucket": "2025-06-15T00:00:00Z", "trace_status": "OK", "model_id": "m2"}, {"COUNT": 1}),
        ({"time_bucket": "2025-06-16T00:00:00Z", "trace_status": "OK", "model_id": "m2"}, {"COUNT": 1}),
    ]


def test_hourly_buckets_and_bucket_start(world: World) -> None:
    response = world.query(TRACES, "latency", agg(MAX), time_bucket=Duration(seconds=3600))
    starts = [p.time_bucket_start.ToMilliseconds() for p in response.data_points]
    assert starts == [DAY0 + HOUR_MS, DAY0 + 2 * HOUR_MS, DAY0 + 26 * HOUR_MS]
    assert [(p.dimensions["time_bucket"], p.values["MAX"]) for p in response.data_points] == [
        ("2025-06-15T01:00:00Z", 300), ("2025-06-15T02:00:00Z", 200), ("2025-06-16T02:00:00Z", 50)
    ]  # fmt: skip


def test_p95_latency_per_model_per_day(world: World) -> None:
    points = world.points(
        TRACES, "latency", agg(PCT, 95), agg(COUNT), dimensions=["model_id"], time_bucket=Duration(seconds=86_400)
    )
    assert points == [
        ({"time_bucket": "2025-06-15T00:00:00Z", "model_id": "m1"}, {"P95.0": pytest.approx(290), "COUNT": 2}),
        ({"time_bucket": "2025-06-15T00:00:00Z", "model_id": "m2"}, {"P95.0": 200, "COUNT": 1}),
        ({"time_bucket": "2025-06-16T00:00:00Z", "model_id": "m2"}, {"P95.0": 50, "COUNT": 1}),
    ]


# -- SPANS -----------------------------------------------------------------------------------


def test_span_count_per_dimension(world: World) -> None:
    assert world.points(SPANS, "span_count", agg(COUNT)) == [({}, {"COUNT": 6})]
    by = {d: world.points(SPANS, "span_count", agg(COUNT), dimensions=[d]) for d in
          ("span_name", "span_type", "span_status", "trace_name", "trace_status", "model_id", "run_id")}  # fmt: skip
    assert by["span_name"] == [({"span_name": "agent"}, {"COUNT": 2}), ({"span_name": "llm"}, {"COUNT": 3}),
                               ({"span_name": "tool"}, {"COUNT": 1})]  # fmt: skip
    assert by["span_type"] == [({"span_type": "AGENT"}, {"COUNT": 2}), ({"span_type": "LLM"}, {"COUNT": 3}),
                               ({"span_type": "TOOL"}, {"COUNT": 1})]  # fmt: skip
    assert by["span_status"] == [({"span_status": "ERROR"}, {"COUNT": 2}), ({"span_status": "OK"}, {"COUNT": 3}),
                                 ({"span_status": "UNSET"}, {"COUNT": 1})]  # fmt: skip
    assert by["trace_name"] == [({"trace_name": "chat"}, {"COUNT": 4}), ({"trace_name": "search"}, {"COUNT": 2})]
    assert by["trace_status"] == [({"trace_status": "ERROR"}, {"COUNT": 1}), ({"trace_status": "OK"}, {"COUNT": 5})]
    assert by["model_id"] == [({"model_id": "m1"}, {"COUNT": 4}), ({"model_id": "m2"}, {"COUNT": 2})]
    assert by["run_id"] == [({"run_id": ""}, {"COUNT": 3}), ({"run_id": RUN}, {"COUNT": 3})]


def test_span_latency_of_ended_spans(world: World) -> None:
    aggs = [agg(COUNT), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 50)]
    assert world.points(SPANS, "latency", *aggs, dimensions=["span_name"]) == [
        ({"span_name": "agent"}, {"COUNT": 2, "AVG": 150, "MIN": 100, "MAX": 200, "P50.0": 150}),
        ({"span_name": "llm"}, {"COUNT": 3, "AVG": pytest.approx(70.5 / 3), "MIN": 0.5, "MAX": 50, "P50.0": 20}),
    ]  # the running "tool" span has no latency


# -- ASSESSMENTS -----------------------------------------------------------------------------


def test_assessment_count_of_valid_assessments(world: World) -> None:
    assert world.points(ASSESSMENTS, "assessment_count", agg(COUNT), dimensions=["assessment_name"]) == [
        ({"assessment_name": "correct"}, {"COUNT": 3}),  # errors count
        ({"assessment_name": "expected"}, {"COUNT": 1}),
        ({"assessment_name": "relevant"}, {"COUNT": 3}),
        ({"assessment_name": "score"}, {"COUNT": 2}),  # the overridden 0.4 is not valid
    ]


@pytest.mark.parametrize(
    ("dimension", "expected"),
    [
        ("assessment_kind", {"expectation": 1, "feedback": 8}),
        ("source_type", {"CODE": 2, "HUMAN": 4, "LLM_JUDGE": 3}),
        ("assessment_run_id", {"": 6, RUN: 3}),
        ("trace_name", {"chat": 5, "search": 4}),
        ("model_id", {"m1": 5, "m2": 4}),
        ("run_id", {"": 4, RUN: 5}),
        ("trace_status", {"OK": 9}),
    ],
)
def test_assessment_dimensions(world: World, dimension: str, expected: dict[str, int]) -> None:
    points = world.points(ASSESSMENTS, "assessment_count", agg(COUNT), dimensions=[dimension])
    assert points == [({dimension: k}, {"COUNT": v}) for k, v in expected.items()]


def test_assessment_value_numeric_view(world: World) -> None:
    aggs = [agg(COUNT), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 25)]
    assert world.points(ASSESSMENTS, "assessment_value", *aggs, dimensions=["assessment_name"]) == [
        ({"assessment_name": "correct"}, {"COUNT": 2, "AVG": 0.5, "MIN": 0, "MAX": 1, "P25.0": 0.25}),
        ({"assessment_name": "relevant"}, {"COUNT": 2, "AVG": 0.5, "MIN": 0, "MAX": 1, "P25.0": 0.25}),
        ({"assessment_name": "score"}, pytest.approx({"COUNT": 2, "AVG": 0.7, "MIN": 0.6, "MAX": 0.8, "P25.0": 0.65})),
    ]  # "expected" ("42", a string) and "maybe" have no numeric view; errors have no value


# -- filter, time range, experiments, empty, truncation ----------------------------------------


def test_filter_is_the_search_traces_filter(world: World) -> None:
    count = agg(COUNT)
    assert world.points(TRACES, "trace_count", count, filter="attributes.model_id = 'm1'") == [({}, {"COUNT": 2})]
    either = "tags.`mlflow.traceName` = 'chat' OR trace.status = 'IN_PROGRESS'"
    assert world.points(TRACES, "trace_count", count, filter=either) == [({}, {"COUNT": 4})]
    # span.* keys select traces having such a span: every span of those traces is counted.
    assert world.points(SPANS, "span_count", count, filter="span.name = 'tool'") == [({}, {"COUNT": 3})]
    assert world.points(ASSESSMENTS, "assessment_count", count, filter="feedback.score > 0.7") == [({}, {"COUNT": 5})]
    assert world.points(ASSESSMENTS, "assessment_count", count, filter="feedback.score < 0.5") == []


def test_time_range_is_start_inclusive_end_exclusive(world: World) -> None:
    start, end = stamp(DAY0 + HOUR_MS + HOUR_MS // 2), stamp(DAY0 + 3 * HOUR_MS)
    points = world.points(TRACES, "latency", agg(MIN), agg(MAX), start_time=start, end_time=end)
    assert points == [({}, {"MIN": 200, "MAX": 300})]  # traces 2 and 3; trace 5 starts at `end`
    assert world.points(TRACES, "trace_count", agg(COUNT), start_time=stamp(DAY0 + 3 * HOUR_MS)) == [({}, {"COUNT": 2})]
    assert world.points(TRACES, "trace_count", agg(COUNT), end_time=stamp(DAY0 + HOUR_MS)) == []


def test_several_experiments(world: World, client: Client) -> None:
    w = Writer(client)
    w.trace(world.other, 10, DAY0, 1_000, name="chat")
    both = [world.exp, world.other, world.exp]
    assert world.points(TRACES, "latency", agg(MAX), experiment_ids=both) == [({}, {"MAX": 1_000})]
    assert world.points(TRACES, "trace_count", agg(COUNT), experiment_ids=both) == [({}, {"COUNT": 6})]


def test_one_query_shape_answers_for_any_values(world: World, client: Client) -> None:
    """A statement is compiled once per shape; its experiments, times, bucket and limit are
    given at each run, so the second call with other values gets its own answer."""
    Writer(client).trace(world.other, 11, DAY0 + HOUR_MS, 700, name="chat")
    h, count = HOUR_MS, agg(COUNT)
    windows = [(DAY0, DAY0 + 2 * h, 2), (DAY0 + 2 * h, DAY0 + 27 * h, 3), (DAY0 + h + 1, DAY0 + 2 * h, 1)]
    for start, end, expected in windows:
        got = world.points(TRACES, "trace_count", count, start_time=stamp(start), end_time=stamp(end))
        assert got == [({}, {"COUNT": expected})]
    assert world.points(TRACES, "latency", agg(MAX), experiment_ids=[world.other]) == [({}, {"MAX": 700})]
    assert world.points(TRACES, "latency", agg(MAX), experiment_ids=[world.exp]) == [({}, {"MAX": 300})]
    days = world.points(TRACES, "trace_count", count, time_bucket=Duration(seconds=86_400))
    hours = world.points(TRACES, "trace_count", count, time_bucket=Duration(seconds=3_600))
    assert [v["COUNT"] for _, v in days] == [4, 1] and [v["COUNT"] for _, v in hours] == [2, 1, 1, 1]
    by_status = [
        world.query(TRACES, "trace_count", count, dimensions=["trace_status"], max_data_points=n) for n in (1, 3)
    ]
    assert [(len(r.data_points), r.truncated) for r in by_status] == [(1, True), (3, False)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("trace.status IN ('OK', 'ERROR')", 4),  # an expanding parameter: run as SQLAlchemy builds it
        ("span.name = 'tool'", 1),
        ("span.attributes.`mlflow.chat.tokenUsage` LIKE '%input_tokens%'", 3),  # a JSON path
        ("tags.`mlflow.traceName` != 'chat'", 1),
        ("trace.text ILIKE '%nowhere%'", 0),  # a JSON path SQLite's bind processor writes
    ],
)
def test_filters_of_every_kind_give_the_same_count_twice(world: World, text: str, expected: int) -> None:
    for _ in range(2):  # the first call compiles the shape, the second reuses it
        points = world.points(TRACES, "trace_count", agg(COUNT), filter=text)
        assert points == ([({}, {"COUNT": expected})] if expected else [])


def test_empty_results(world: World) -> None:
    for view, metric in ((TRACES, "trace_count"), (SPANS, "latency"), (ASSESSMENTS, "assessment_value")):
        response = world.query(view, metric, agg(COUNT), experiment_ids=[world.other, "987654"])
        assert list(response.data_points) == [] and not response.truncated


def test_truncation(world: World) -> None:
    response = world.query(TRACES, "trace_count", agg(COUNT), dimensions=["trace_status"], max_data_points=2)
    assert [p.dimensions["trace_status"] for p in response.data_points] == ["ERROR", "IN_PROGRESS"]
    assert response.truncated
    exact = world.query(TRACES, "trace_count", agg(COUNT), dimensions=["trace_status"], max_data_points=3)
    assert len(exact.data_points) == 3 and not exact.truncated
    clamped = world.query(TRACES, "trace_count", agg(COUNT), dimensions=["trace_status"], max_data_points=10**9)
    assert len(clamped.data_points) == 3 and not clamped.truncated


def test_client_helper(world: World) -> None:
    points = world.client.query_trace_metrics(
        [world.exp], "TRACES", "latency", ["P95", "PERCENTILE:50", "avg"], dimensions=["model_id"],
        time_bucket_seconds=86_400, start_time=dt.datetime(2025, 6, 15, tzinfo=dt.UTC),
    )  # fmt: skip
    assert points[0] == {
        "dimensions": {"model_id": "m1", "time_bucket": "2025-06-15T00:00:00Z"},
        "values": {"P95.0": pytest.approx(290), "P50.0": 200, "AVG": 200},
    }
    assert len(points) == 3
    with pytest.raises(ValueError):
        world.client.query_trace_metrics([world.exp], "TRACES", "latency", ["P9x"])


# -- random data against a brute-force computation ---------------------------------------------


def _random_world(client: Client, rng: random.Random, n_traces: int) -> tuple[str, list[Any]]:
    w = Writer(client)
    exp = w.experiment(f"random-{rng.random()}")
    names, models = ["a", "b", "B", "é", None], ["m1", "m2", "", "m3"]
    spans, items = [], []
    for n in range(1, n_traces + 1):
        at = DAY0 + rng.randrange(-3 * HOUR_MS, 30 * HOUR_MS)
        duration = rng.choice([None, rng.randrange(0, 5), rng.randrange(0, 5000)])
        meta = _meta(rng.choice(models), rng.choice(["", "s1", "s2", f"s{n}"]), rng.choice(["", "u1"]),
                     rng.choice(["", RUN]))  # fmt: skip
        state = rng.choice(["OK", "ERROR", "IN_PROGRESS"])
        w.trace(exp, n, at, duration, state=state, name=rng.choice(names), metadata=meta)
        for k in range(rng.randrange(0, 4)):
            start = at + rng.randrange(0, 100)
            end = rng.choice([None, start + rng.randrange(0, 50), start + rng.randrange(0, 50_000) / 1000])
            usage = {"mlflow.chat.tokenUsage": {"input_tokens": rng.randrange(100), "output_tokens": rng.randrange(9)}}
            attrs = usage if rng.random() < 0.5 else None
            spans.append(span(tid(n), n * 10 + k, name=rng.choice(["llm", "tool", "Tool"]),
                              kind=rng.choice(["LLM", "TOOL", ""]), start_ms=start, end_ms=end,
                              status=rng.choice(["OK", "ERROR", "UNSET"]), attrs=attrs))  # fmt: skip
        for _ in range(rng.randrange(0, 4)):
            value = rng.choice([True, False, 0.5, 1, 3, -2.25, "yes", "NO", "Yes", "maybe", {"x": 1}, None])
            kind = rng.choice(["feedback", "expectation"]) if value is not None else "feedback"
            items.append(assessment(tid(n), rng.choice(["q", "r"]), value, kind=kind,
                                    source=rng.choice(["HUMAN", "CODE"]), run_id=rng.choice(["", RUN]),
                                    error=value is None))  # fmt: skip
    w.spans(exp, spans)
    created = w.assess(items)
    overrides = [assessment(a.trace_id, a.name, rng.choice([0.0, 1.0, "yes"]), overrides=a.assessment_id)
                 for a in created if a.WhichOneof("value") == "feedback" and rng.random() < 0.2]  # fmt: skip
    w.assess(overrides)
    return exp, w.read(tid(n) for n in range(1, n_traces + 1))


_CASES: list[tuple[Any, str, list[pb.Aggregation]]] = [
    (TRACES, "trace_count", [agg(COUNT)]),
    (TRACES, "session_count", [agg(COUNT)]),
    (TRACES, "latency", [agg(COUNT), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 50), agg(PCT, 95), agg(PCT, 12.5)]),
    (TRACES, "input_tokens", [agg(SUM), agg(AVG), agg(PCT, 90), agg(PCT, 0)]),
    (TRACES, "total_tokens", [agg(COUNT), agg(SUM), agg(MIN), agg(MAX), agg(PCT, 100)]),
    (SPANS, "span_count", [agg(COUNT)]),
    (SPANS, "latency", [agg(COUNT), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 50), agg(PCT, 99)]),
    (ASSESSMENTS, "assessment_count", [agg(COUNT)]),
    (ASSESSMENTS, "assessment_value", [agg(COUNT), agg(AVG), agg(MIN), agg(MAX), agg(PCT, 75), agg(PCT, 33.3)]),
]
_DIMS: dict[Any, list[str]] = {
    TRACES: ["trace_name", "trace_status", "model_id", "run_id", "session_id", "user_id"],
    SPANS: ["span_name", "span_type", "span_status", "trace_name", "trace_status", "model_id", "run_id"],
    ASSESSMENTS: ["assessment_name", "assessment_kind", "source_type", "assessment_run_id", "model_id", "run_id"],
}


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_random_data_matches_brute_force(client: Client, seed: int) -> None:
    rng = random.Random(seed)
    exp, traces = _random_world(client, rng, 120)
    world = World(client, exp, exp)
    for view, metric, aggs in _CASES:
        rows = rows_of(view, traces)
        for _ in range(5):
            dims = rng.sample(_DIMS[view], rng.randrange(0, 3))
            bucket_s = rng.choice([0, 0, 3600, 86_400, 7 * 86_400])
            fields: dict[str, Any] = {"dimensions": dims}
            if bucket_s:
                fields["time_bucket"] = Duration(seconds=bucket_s)
            selected = rows
            if rng.random() < 0.3:  # a time range
                start, end = sorted(rng.sample(range(DAY0 - 3 * HOUR_MS, DAY0 + 30 * HOUR_MS), 2))
                fields |= {"start_time": stamp(start), "end_time": stamp(end)}
                selected = [r for r in rows if start <= r["time"] < end]
            got = world.query(view, metric, *aggs, **fields)
            assert not got.truncated
            assert_same(got.data_points, reference(selected, metric, aggs, dims, bucket_s * 1000))
