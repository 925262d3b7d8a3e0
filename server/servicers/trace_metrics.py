"""AnalyticsService.QueryTraceMetrics (SPEC §9): validate, convert, aggregate in the store, convert."""

from __future__ import annotations

import grpc

from mlgenai.v1 import analytics_service_pb2 as pb
from server.convert.trace_metrics import metric_query, to_response
from store.uow import Database


class TraceMetricsMethods:
    db: Database

    def QueryTraceMetrics(
        self, request: pb.QueryTraceMetricsRequest, context: grpc.ServicerContext
    ) -> pb.QueryTraceMetricsResponse:
        query = metric_query(request)
        return to_response(query, self.db.read(lambda uow: uow.trace_metrics.query(query)))
