"""Helpers shared by tests: stored-state checks and error decoding."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import grpc
import pytest
import sqlalchemy as sa

from mlgenai.client import MlgenaiError
from store.uow import Database


def count_rows(db: Database, table: str, where: str = "") -> int:
    """How many rows ``table`` holds (for "nothing was stored" checks)."""
    sql = f"SELECT count(*) FROM {table}" + (f" WHERE {where}" if where else "")
    with db.engine.connect() as conn:
        return int(conn.execute(sa.text(sql)).scalar_one())


def snapshot(db: Database, *tables: str) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of ``tables``, sorted: compare before/after a rejected call."""
    out: dict[str, list[tuple[Any, ...]]] = {}
    with db.engine.connect() as conn:
        for table in tables:
            rows = conn.execute(sa.text(f"SELECT * FROM {table}")).all()
            out[table] = sorted((tuple(r) for r in rows), key=repr)
    return out


def expect_error(code: grpc.StatusCode, reason: str, call: Callable[[], Any], field: str | None = None) -> MlgenaiError:
    """Run ``call``; assert it fails with ``code`` and ``reason`` (and a violation on ``field``)."""
    with pytest.raises(MlgenaiError) as info:
        call()
    err = info.value
    assert err.code() == code, f"expected {code.name}, got {err.code().name}: {err}"
    assert err.reason == reason, f"expected reason {reason}, got {err.reason}: {err}"
    if field is not None:
        fields = [v.field for v in err.violations]
        assert field in fields, f"expected a violation on {field!r}, got {fields}"
    return err


def expect_nothing_written(
    database: Database,
    tables: tuple[str, ...],
    code: grpc.StatusCode,
    reason: str,
    call: Callable[[], Any],
    field: str | None = None,
) -> MlgenaiError:
    """``expect_error``, and assert that ``tables`` hold the same rows afterwards."""
    before = snapshot(database, *tables)
    err = expect_error(code, reason, call, field)
    assert snapshot(database, *tables) == before
    return err
