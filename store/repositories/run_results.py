"""GetRunResults and CompareRuns (SPEC §7). To be written."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from store.uow import UnitOfWork


class RunResultsReader:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
