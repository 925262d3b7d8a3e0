"""Domain objects returned by repositories: frozen dataclasses, never ORM instances.

Times are epoch milliseconds (``*_ms``); the server converts them to protobuf Timestamps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Generic, TypeVar

T = TypeVar("T")

ACTIVE = "active"
DELETED = "deleted"

DEFAULT_EXPERIMENT_ID = "0"
DEFAULT_EXPERIMENT_NAME = "Default"


@dataclass(frozen=True, slots=True)
class Experiment:
    experiment_id: str
    name: str
    artifact_location: str
    lifecycle_stage: str
    tags: Mapping[str, str]
    create_time_ms: int
    update_time_ms: int


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    """One page of a List/Search: the items and the token of the next page ("" at the end)."""

    items: list[T] = field(default_factory=list)
    next_page_token: str = ""


@dataclass(frozen=True, slots=True)
class SearchQuery:
    """What every List/Search takes: filter text, order items, page size and token."""

    filter: str = ""
    order_by: tuple[str, ...] = ()
    page_size: int = 100
    page_token: str = ""
