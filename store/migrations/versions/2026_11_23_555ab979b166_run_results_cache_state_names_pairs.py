"""run results cache: state, names, pairs

Revision ID: 555ab979b166
Revises: 156691eec7aa
Create Date: 2026-11-23 12:44:51.763455
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "555ab979b166"
down_revision: str | None = "156691eec7aa"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "run_result_names",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column(
            "name",
            sa.String(length=250).with_variant(sa.String(length=250, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("count", sa.BigInteger(), nullable=False),
        sa.Column("numeric_count", sa.BigInteger(), nullable=False),
        sa.Column("mean", sa.Float(), nullable=True),
        sa.Column("min", sa.Float(), nullable=True),
        sa.Column("max", sa.Float(), nullable=True),
        sa.Column("p50", sa.Float(), nullable=True),
        sa.Column("p90", sa.Float(), nullable=True),
        sa.Column("pass_rate", sa.Float(), nullable=True),
        sa.Column("errors", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_run_result_names")),
    )
    op.create_table(
        "run_result_pairs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column(
            "name",
            sa.String(length=250).with_variant(sa.String(length=250, collation="C"), "postgresql"),
            nullable=False,
        ),
        sa.Column("pair_key", sa.String().with_variant(sa.String(collation="C"), "postgresql"), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.PrimaryKeyConstraint("run_id", "name", "pair_key", name=op.f("pk_run_result_pairs")),
    )
    op.create_table(
        "run_result_state",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.Column("names_generation", sa.BigInteger(), nullable=True),
        sa.Column("pairs_generation", sa.BigInteger(), nullable=True),
        sa.Column("trace_count", sa.BigInteger(), nullable=True),
        sa.Column("pair_keys", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_run_result_state_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_run_result_state")),
    )


def downgrade() -> None:
    op.drop_table("run_result_state")
    op.drop_table("run_result_pairs")
    op.drop_table("run_result_names")
