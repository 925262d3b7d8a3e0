"""evaluation datasets

Revision ID: d441d13d1807
Revises: 647d96239467
Create Date: 2026-11-23 06:14:12.261959
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "d441d13d1807"
down_revision: str | None = "647d96239467"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "evaluation_datasets",
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("num_records", sa.BigInteger(), nullable=False),
        sa.Column("last_position", sa.BigInteger(), nullable=False),
        sa.Column("content_sum", sa.String(length=64), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column(
            "field_summary",
            sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
            nullable=False,
        ),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("last_updated_by", sa.Text(), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("dataset_id", name=op.f("pk_evaluation_datasets")),
    )
    with op.batch_alter_table("evaluation_datasets", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluation_datasets_create_time_dataset_id"), ["create_time", "dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_evaluation_datasets_name_dataset_id"), ["name", "dataset_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_evaluation_datasets_update_time_dataset_id"), ["update_time", "dataset_id"], unique=False
        )

    op.create_table(
        "evaluation_dataset_experiments",
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["evaluation_datasets.dataset_id"],
            name=op.f("fk_evaluation_dataset_experiments_dataset_id_evaluation_datasets"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name=op.f("fk_evaluation_dataset_experiments_experiment_id_experiments"),
        ),
        sa.PrimaryKeyConstraint("dataset_id", "experiment_id", name=op.f("pk_evaluation_dataset_experiments")),
    )
    with op.batch_alter_table("evaluation_dataset_experiments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_evaluation_dataset_experiments_experiment_id_dataset_id"),
            ["experiment_id", "dataset_id"],
            unique=False,
        )

    op.create_table(
        "evaluation_dataset_fields",
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("section", sa.String(length=12), nullable=False),
        sa.Column("path", sa.String(length=500), nullable=False),
        sa.Column(
            "stats", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["evaluation_datasets.dataset_id"],
            name=op.f("fk_evaluation_dataset_fields_dataset_id_evaluation_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "section", "path", name=op.f("pk_evaluation_dataset_fields")),
    )
    op.create_table(
        "evaluation_dataset_records",
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("position", sa.BigInteger(), nullable=False),
        sa.Column("valid_from", sa.BigInteger(), nullable=False),
        sa.Column("valid_to", sa.BigInteger(), nullable=True),
        sa.Column("dataset_record_id", sa.String(length=35), nullable=False),
        sa.Column("input_hash", sa.String(length=64), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("last_updated_by", sa.Text(), nullable=True),
        sa.Column("proto", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["evaluation_datasets.dataset_id"],
            name=op.f("fk_evaluation_dataset_records_dataset_id_evaluation_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "position", "valid_from", name=op.f("pk_evaluation_dataset_records")),
    )
    with op.batch_alter_table("evaluation_dataset_records", schema=None) as batch_op:
        batch_op.create_index(
            "ix_evaluation_dataset_records_current_position",
            ["dataset_id", "position"],
            unique=False,
            postgresql_where=sa.text("valid_to IS NULL"),
            sqlite_where=sa.text("valid_to IS NULL"),
        )
        batch_op.create_index(
            batch_op.f("ix_evaluation_dataset_records_dataset_id_dataset_record_id"),
            ["dataset_id", "dataset_record_id"],
            unique=False,
        )
        batch_op.create_index(
            "uq_evaluation_dataset_records_current_input",
            ["dataset_id", "input_hash"],
            unique=True,
            postgresql_where=sa.text("valid_to IS NULL"),
            sqlite_where=sa.text("valid_to IS NULL"),
        )

    op.create_table(
        "evaluation_dataset_tags",
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["evaluation_datasets.dataset_id"],
            name=op.f("fk_evaluation_dataset_tags_dataset_id_evaluation_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "key", name=op.f("pk_evaluation_dataset_tags")),
    )
    op.create_table(
        "evaluation_dataset_versions",
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("num_records", sa.BigInteger(), nullable=False),
        sa.Column("added_count", sa.BigInteger(), nullable=False),
        sa.Column("updated_count", sa.BigInteger(), nullable=False),
        sa.Column("deleted_count", sa.BigInteger(), nullable=False),
        sa.Column("created_by", sa.Text(), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["dataset_id"],
            ["evaluation_datasets.dataset_id"],
            name=op.f("fk_evaluation_dataset_versions_dataset_id_evaluation_datasets"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("dataset_id", "version", name=op.f("pk_evaluation_dataset_versions")),
    )


def downgrade() -> None:
    op.drop_table("evaluation_dataset_versions")
    op.drop_table("evaluation_dataset_tags")
    with op.batch_alter_table("evaluation_dataset_records", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_evaluation_dataset_records_current_input",
            postgresql_where=sa.text("valid_to IS NULL"),
            sqlite_where=sa.text("valid_to IS NULL"),
        )
        batch_op.drop_index(batch_op.f("ix_evaluation_dataset_records_dataset_id_dataset_record_id"))
        batch_op.drop_index(
            "ix_evaluation_dataset_records_current_position",
            postgresql_where=sa.text("valid_to IS NULL"),
            sqlite_where=sa.text("valid_to IS NULL"),
        )

    op.drop_table("evaluation_dataset_records")
    op.drop_table("evaluation_dataset_fields")
    with op.batch_alter_table("evaluation_dataset_experiments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluation_dataset_experiments_experiment_id_dataset_id"))

    op.drop_table("evaluation_dataset_experiments")
    with op.batch_alter_table("evaluation_datasets", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_evaluation_datasets_update_time_dataset_id"))
        batch_op.drop_index(batch_op.f("ix_evaluation_datasets_name_dataset_id"))
        batch_op.drop_index(batch_op.f("ix_evaluation_datasets_create_time_dataset_id"))

    op.drop_table("evaluation_datasets")
