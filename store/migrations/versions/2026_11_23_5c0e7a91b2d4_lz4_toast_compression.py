"""lz4 compression of the large JSON and binary columns (PostgreSQL)

Spans carry ~1 KB of JSON and its serialized proto: both are compressed out of line (TOAST).
PostgreSQL's default compressor (pglz) cost about a third of a LogSpans batch's database time
on this project's benchmark; lz4 is several times faster at a similar ratio. Only where the
server is built with lz4 (PostgreSQL 14+, e.g. Debian's and the official images); elsewhere,
and on SQLite, this revision changes nothing. Existing values keep their compression.

Revision ID: 5c0e7a91b2d4
Revises: d441d13d1807
Create Date: 2026-11-23 07:40:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "5c0e7a91b2d4"
down_revision: str | None = "d441d13d1807"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (("spans", "payload"), ("spans", "proto"))
_LZ4 = sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not bind.execute(_LZ4).scalar():
        return
    for table, column in COLUMNS:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("default")
