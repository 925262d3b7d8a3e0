"""AnalyticsService.QueryTraceMetrics (SPEC §9). To be written."""

from __future__ import annotations

from store.uow import Database


class TraceMetricsMethods:
    db: Database
