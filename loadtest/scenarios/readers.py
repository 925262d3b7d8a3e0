"""``readers``: people and dashboards looking at what was recorded.

The trace explorer searches an experiment's traces (newest first, sometimes filtered) and
opens one with its spans (SearchTraces, GetTrace); the dataset page lists records
(ListRecords); the monitoring dashboard asks for latency percentiles and counts per status
(QueryTraceMetrics). Read-only: the setup writes everything they read.
"""

from __future__ import annotations

import random

from loadtest.calls import Calls
from loadtest.scenarios.base import Scenario, Step, create_dataset, create_experiment, pick, seed_traces
from mlgenai.v1 import (
    analytics_service_pb2 as anpb,
    evaluation_dataset_service_pb2 as dpb,
    trace_service_pb2 as tpb,
)

TRACES = 60
RECORDS = 200
FILTERS = ("", "", "trace.status = 'OK'", "span.type = 'RETRIEVER'", "trace.execution_time_ms > 100")


class ReadersScenario(Scenario):
    name = "readers"
    methods = (
        "TraceService/SearchTraces",
        "TraceService/GetTrace",
        "EvaluationDatasetService/ListRecords",
        "AnalyticsService/QueryTraceMetrics",
    )

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.experiment_id = self.dataset_id = ""
        self.traces: list[str] = []

    async def setup(self, calls: Calls) -> list[str]:
        self.experiment_id = await create_experiment(calls, self.name)
        self.traces = await seed_traces(calls, self.experiment_id, self.nonce, TRACES, 5)
        self.dataset_id = await create_dataset(calls, self.experiment_id, RECORDS)
        return [
            f"readers: experiment {self.experiment_id} with {TRACES} traces of 5 spans,"
            f" dataset {self.dataset_id} with {RECORDS} records"
        ]

    def steps(self) -> list[Step]:
        return [
            Step("search_traces", 3, self.search),
            Step("get_trace", 3, self.get),
            Step("list_records", 2, self.list_records),
            Step("trace_metrics", 2, self.metrics),
        ]

    async def search(self, calls: Calls) -> None:
        req = tpb.SearchTracesRequest(experiment_ids=[self.experiment_id], filter=pick(self.rng, FILTERS), page_size=25)
        await calls.unary("TraceService/SearchTraces", calls.traces.SearchTraces, req)

    async def get(self, calls: Calls) -> None:
        req = tpb.GetTraceRequest(trace_id=pick(self.rng, self.traces))
        await calls.unary("TraceService/GetTrace", calls.traces.GetTrace, req)

    async def list_records(self, calls: Calls) -> None:
        req = dpb.ListRecordsRequest(dataset_id=self.dataset_id, page_size=50)
        await calls.unary("EvaluationDatasetService/ListRecords", calls.datasets.ListRecords, req)

    async def metrics(self, calls: Calls) -> None:
        """p95 latency and trace count per status."""
        req = anpb.QueryTraceMetricsRequest(
            experiment_ids=[self.experiment_id],
            view=anpb.METRIC_VIEW_TRACES,
            metric_name="latency",
            aggregations=[
                anpb.Aggregation(type=anpb.AGGREGATION_TYPE_PERCENTILE, percentile=95),
                anpb.Aggregation(type=anpb.AGGREGATION_TYPE_COUNT),
            ],
            dimensions=["trace_status"],
        )
        await calls.unary("AnalyticsService/QueryTraceMetrics", calls.analytics.QueryTraceMetrics, req)
