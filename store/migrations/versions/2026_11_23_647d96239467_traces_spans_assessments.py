"""traces, spans, assessments

Revision ID: 647d96239467
Revises: 6a8d6abb0851
Create Date: 2026-11-23 05:36:51.033754
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "647d96239467"
down_revision: str | None = "6a8d6abb0851"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "traces",
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("client_request_id", sa.String(length=250), nullable=True),
        sa.Column("request_time", sa.BigInteger(), nullable=False),
        sa.Column("execution_duration", sa.BigInteger(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("name", sa.Text(), nullable=True),
        sa.Column("request_preview", sa.String(length=1000), nullable=True),
        sa.Column("response_preview", sa.String(length=1000), nullable=True),
        sa.Column("session_id", sa.String(length=250), nullable=True),
        sa.Column("user_id", sa.String(length=250), nullable=True),
        sa.Column("model_id", sa.String(length=250), nullable=True),
        sa.Column("run_id", sa.String(length=250), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.Column("span_count", sa.Integer(), nullable=False),
        sa.Column("request_time_from_caller", sa.Boolean(), nullable=False),
        sa.Column("duration_from_caller", sa.Boolean(), nullable=False),
        sa.Column("state_from_caller", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.experiment_id"], name=op.f("fk_traces_experiment_id_experiments")
        ),
        sa.PrimaryKeyConstraint("trace_id", name=op.f("pk_traces")),
    )
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_traces_client_request_id"), ["client_request_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_traces_experiment_id_model_id"), ["experiment_id", "model_id"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_traces_experiment_id_request_time_trace_id"),
            ["experiment_id", "request_time", "trace_id"],
            unique=False,
        )
        batch_op.create_index(
            batch_op.f("ix_traces_experiment_id_session_id"), ["experiment_id", "session_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_traces_run_id"), ["run_id"], unique=False)

    op.create_table(
        "assessments",
        sa.Column("assessment_id", sa.String(length=34), nullable=False),
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("source_type", sa.String(length=12), nullable=False),
        sa.Column("source_id", sa.String(length=250), nullable=True),
        sa.Column(
            "value", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column(
            "error", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=True
        ),
        sa.Column("value_number", sa.Float(), nullable=True),
        sa.Column("value_string", sa.Text(), nullable=True),
        sa.Column("value_bool", sa.Boolean(), nullable=True),
        sa.Column("rationale", sa.Text(), nullable=True),
        sa.Column(
            "metadata", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("run_id", sa.String(length=32), nullable=True),
        sa.Column("overrides", sa.String(length=34), nullable=True),
        sa.Column("valid", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace_id"], ["traces.trace_id"], name=op.f("fk_assessments_trace_id_traces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("assessment_id", name=op.f("pk_assessments")),
    )
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_assessments_name_kind_valid_trace_id"), ["name", "kind", "valid", "trace_id"], unique=False
        )
        batch_op.create_index(batch_op.f("ix_assessments_overrides"), ["overrides"], unique=False)
        batch_op.create_index(batch_op.f("ix_assessments_run_id_name"), ["run_id", "name"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_assessments_trace_id_create_time"), ["trace_id", "create_time"], unique=False
        )

    op.create_table(
        "spans",
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.Column("span_id", sa.String(length=16), nullable=False),
        sa.Column("parent_span_id", sa.String(length=16), nullable=True),
        sa.Column("name", sa.String(length=1000), nullable=False),
        sa.Column("span_type", sa.String(length=64), nullable=False),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("start_time_unix_nano", sa.BigInteger(), nullable=False),
        sa.Column("end_time_unix_nano", sa.BigInteger(), nullable=True),
        sa.Column("input_tokens", sa.BigInteger(), nullable=True),
        sa.Column("output_tokens", sa.BigInteger(), nullable=True),
        sa.Column("total_tokens", sa.BigInteger(), nullable=True),
        sa.Column(
            "payload", sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"), nullable=False
        ),
        sa.Column("proto", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace_id"], ["traces.trace_id"], name=op.f("fk_spans_trace_id_traces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trace_id", "span_id", name=op.f("pk_spans")),
    )
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spans_name_trace_id"), ["name", "trace_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_spans_span_type_trace_id"), ["span_type", "trace_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_spans_trace_id_start_time_unix_nano_span_id"),
            ["trace_id", "start_time_unix_nano", "span_id"],
            unique=False,
        )

    op.create_table(
        "trace_metadata",
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace_id"], ["traces.trace_id"], name=op.f("fk_trace_metadata_trace_id_traces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trace_id", "key", name=op.f("pk_trace_metadata")),
    )
    with op.batch_alter_table("trace_metadata", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_metadata_value"), ["value"], unique=False, postgresql_using="hash")

    op.create_table(
        "trace_tags",
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trace_id"], ["traces.trace_id"], name=op.f("fk_trace_tags_trace_id_traces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trace_id", "key", name=op.f("pk_trace_tags")),
    )
    with op.batch_alter_table("trace_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_tags_value"), ["value"], unique=False, postgresql_using="hash")


def downgrade() -> None:
    with op.batch_alter_table("trace_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_tags_value"), postgresql_using="hash")

    op.drop_table("trace_tags")
    with op.batch_alter_table("trace_metadata", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_metadata_value"), postgresql_using="hash")

    op.drop_table("trace_metadata")
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spans_trace_id_start_time_unix_nano_span_id"))
        batch_op.drop_index(batch_op.f("ix_spans_span_type_trace_id"))
        batch_op.drop_index(batch_op.f("ix_spans_name_trace_id"))

    op.drop_table("spans")
    with op.batch_alter_table("assessments", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_assessments_trace_id_create_time"))
        batch_op.drop_index(batch_op.f("ix_assessments_run_id_name"))
        batch_op.drop_index(batch_op.f("ix_assessments_overrides"))
        batch_op.drop_index(batch_op.f("ix_assessments_name_kind_valid_trace_id"))

    op.drop_table("assessments")
    with op.batch_alter_table("traces", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_traces_run_id"))
        batch_op.drop_index(batch_op.f("ix_traces_experiment_id_session_id"))
        batch_op.drop_index(batch_op.f("ix_traces_experiment_id_request_time_trace_id"))
        batch_op.drop_index(batch_op.f("ix_traces_experiment_id_model_id"))
        batch_op.drop_index(batch_op.f("ix_traces_client_request_id"))

    op.drop_table("traces")
