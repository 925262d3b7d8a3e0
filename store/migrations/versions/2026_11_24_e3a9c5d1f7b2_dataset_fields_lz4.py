"""lz4 compression of the dataset field profiles (PostgreSQL)

Every MergeRecords rewrites the stored profile of each field it touches: a JSON document of
~11–21 KB, most of it the base64 distinct sample. pglz compressed it on every write and
decompressed it on every read: the profiles' upkeep took 4.35–4.43 ms of a batch of 100
records with pglz and 3.71–3.73 ms with lz4 (in-process merges of 2,000 benchmark records, two
alternated runs each). As revision 5c0e7a91b2d4 did for spans, only where the server is built
with lz4; elsewhere, and on SQLite, nothing changes. Existing values keep their compression.

Revision ID: e3a9c5d1f7b2
Revises: b7e2c4a19f03
Create Date: 2026-11-24 01:30:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "e3a9c5d1f7b2"
down_revision: str | None = "b7e2c4a19f03"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_LZ4 = sa.text("SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'")


def _set(method: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql" or not bind.execute(_LZ4).scalar():
        return
    op.execute(f"ALTER TABLE evaluation_dataset_fields ALTER COLUMN stats SET COMPRESSION {method}")


def upgrade() -> None:
    _set("lz4")


def downgrade() -> None:
    _set("default")
