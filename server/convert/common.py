"""Conversions shared by every resource."""

from __future__ import annotations

import time

from google.protobuf.timestamp_pb2 import Timestamp

from mlgenai.v1 import common_pb2
from store.domain import ACTIVE, DELETED


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def timestamp(ms: int) -> Timestamp:
    return Timestamp(seconds=ms // 1000, nanos=(ms % 1000) * 1_000_000)


def set_timestamp(ts: Timestamp, ms: int) -> None:
    """``ts`` (a message's field, set in place) to ``ms`` milliseconds since the epoch."""
    seconds, millis = divmod(ms, 1000)
    ts.seconds = seconds
    ts.nanos = millis * 1_000_000


LIFECYCLE = {ACTIVE: common_pb2.LIFECYCLE_STAGE_ACTIVE, DELETED: common_pb2.LIFECYCLE_STAGE_DELETED}

VIEWS = {
    common_pb2.VIEW_TYPE_UNSPECIFIED: "active",
    common_pb2.VIEW_TYPE_ACTIVE_ONLY: "active",
    common_pb2.VIEW_TYPE_DELETED_ONLY: "deleted",
    common_pb2.VIEW_TYPE_ALL: "all",
}
