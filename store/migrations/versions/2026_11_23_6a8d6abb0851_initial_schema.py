"""initial schema: experiments, tags, request ids, service settings; the Default experiment

Revision ID: 6a8d6abb0851
Revises:
Create Date: 2026-11-23 04:41:47.917581
"""

from __future__ import annotations

import time
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "6a8d6abb0851"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "experiments",
        sa.Column(
            "experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("artifact_location", sa.String(length=2048), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name=op.f("ck_experiments_lifecycle_stage")),
        sa.PrimaryKeyConstraint("experiment_id", name=op.f("pk_experiments")),
        sa.UniqueConstraint("name", name=op.f("uq_experiments_name")),
    )
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiments_create_time_experiment_id"), ["create_time", "experiment_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_experiments_update_time_experiment_id"), ["update_time", "experiment_id"], unique=False
        )

    # The Default experiment "0" exists from the start (SPEC §2, as in MLflow).
    now_ms = int(time.time() * 1000)
    experiments = sa.table(
        "experiments",
        sa.column("experiment_id", sa.BigInteger),
        sa.column("name", sa.String),
        sa.column("lifecycle_stage", sa.String),
        sa.column("create_time", sa.BigInteger),
        sa.column("update_time", sa.BigInteger),
    )
    op.bulk_insert(
        experiments,
        [
            {
                "experiment_id": 0,
                "name": "Default",
                "lifecycle_stage": "active",
                "create_time": now_ms,
                "update_time": now_ms,
            }
        ],
    )

    op.create_table(
        "request_ids",
        sa.Column("request_id", sa.String(length=36), nullable=False),
        sa.Column("method", sa.String(length=200), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("response", sa.LargeBinary(), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_request_ids")),
    )
    with op.batch_alter_table("request_ids", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_request_ids_create_time"), ["create_time"], unique=False)

    op.create_table(
        "service_settings",
        sa.Column("key", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("key", name=op.f("pk_service_settings")),
    )
    op.create_table(
        "experiment_tags",
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name=op.f("fk_experiment_tags_experiment_id_experiments"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("experiment_id", "key", name=op.f("pk_experiment_tags")),
    )
    with op.batch_alter_table("experiment_tags", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_experiment_tags_key_experiment_id"), ["key", "experiment_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_experiment_tags_value"), ["value"], unique=False, postgresql_using="hash")


def downgrade() -> None:
    with op.batch_alter_table("experiment_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiment_tags_value"), postgresql_using="hash")
        batch_op.drop_index(batch_op.f("ix_experiment_tags_key_experiment_id"))

    op.drop_table("experiment_tags")
    op.drop_table("service_settings")
    with op.batch_alter_table("request_ids", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_request_ids_create_time"))

    op.drop_table("request_ids")
    with op.batch_alter_table("experiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_experiments_update_time_experiment_id"))
        batch_op.drop_index(batch_op.f("ix_experiments_create_time_experiment_id"))

    op.drop_table("experiments")
