"""The workloads of issue 5 (group ``analytics``): GetRunResults and CompareRuns over two runs of
10,000 traces × 3 feedback names, and QueryTraceMetrics "p95 latency per model per day" over the
100,000 seeded SearchTraces traces. Fixtures: ``bench.analytics_prep`` (prepare "analytics")."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from bench.ops import Fixed, Unary
from bench.trace_suite import TraceContext
from bench.workload import Workload
from mlgenai.v1 import analytics_service_pb2 as pb

ANALYTICS_SERVICE = "/mlgenai.v1.AnalyticsService/"


def analytics_workloads(ctx: TraceContext) -> list[Workload]:
    results = pb.GetRunResultsRequest(run_id=ctx.baseline_run)
    compare = pb.CompareRunsRequest(
        baseline_run_id=ctx.baseline_run, candidate_run_ids=[ctx.candidate_run], page_size=100
    )
    metrics = pb.QueryTraceMetricsRequest(
        experiment_ids=[ctx.search_experiment],
        view=pb.METRIC_VIEW_TRACES,
        metric_name="latency",
        aggregations=[pb.Aggregation(type=pb.AGGREGATION_TYPE_PERCENTILE, percentile=95)],
        dimensions=["model_id"],
        time_bucket=Duration(seconds=86_400),
    )
    return [
        Workload(
            "run_results",
            "GetRunResults",
            "run of 10,000 traces × 3 feedback names",
            Unary(ANALYTICS_SERVICE + "GetRunResults", Fixed(results.SerializeToString())),
            1,
            group="analytics",
            min_duration_s=2.0,
            prepare="analytics",
        ),
        Workload(
            "compare_runs",
            "CompareRuns",
            "2 runs × 10,000 traces × 3 names, summary + first 100 changes",
            Unary(ANALYTICS_SERVICE + "CompareRuns", Fixed(compare.SerializeToString())),
            1,
            group="analytics",
            min_duration_s=2.0,
            prepare="analytics",
        ),
        Workload(
            "trace_metrics_p95",
            "QueryTraceMetrics",
            "p95 latency per model per day, 100,000 traces",
            Unary(ANALYTICS_SERVICE + "QueryTraceMetrics", Fixed(metrics.SerializeToString())),
            1,
            group="analytics",
            min_duration_s=2.0,
            prepare="analytics",
        ),
    ]
