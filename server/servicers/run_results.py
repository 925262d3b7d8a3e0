"""AnalyticsService.GetRunResults and CompareRuns (SPEC §7). To be written."""

from __future__ import annotations

from store.uow import Database


class RunResultsMethods:
    db: Database
