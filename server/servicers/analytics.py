"""AnalyticsService: the read-only aggregations, one mixin per area (see analytics_service.proto
for why they are a service of their own)."""

from __future__ import annotations

from mlgenai.v1 import analytics_service_pb2_grpc
from server.servicers.run_results import RunResultsMethods
from server.servicers.trace_metrics import TraceMetricsMethods
from store.uow import Database


class AnalyticsServicer(TraceMetricsMethods, RunResultsMethods, analytics_service_pb2_grpc.AnalyticsServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db
