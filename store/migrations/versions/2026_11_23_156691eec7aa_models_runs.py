"""logged models, evaluation runs, trace run links (SPEC §6, §7, §3.5)

Revision ID: 156691eec7aa
Revises: 5c0e7a91b2d4
Create Date: 2026-11-23 09:20:16.350642
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "156691eec7aa"
down_revision: str | None = "5c0e7a91b2d4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "logged_model_names",
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("last_version", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["experiment_id"],
            ["experiments.experiment_id"],
            name=op.f("fk_logged_model_names_experiment_id_experiments"),
        ),
        sa.PrimaryKeyConstraint("experiment_id", "name", name=op.f("pk_logged_model_names")),
    )
    op.create_table(
        "logged_models",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("model_type", sa.String(length=256), nullable=True),
        sa.Column("source_run_id", sa.String(length=32), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("status_message", sa.String(length=1000), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name=op.f("ck_logged_models_lifecycle_stage")),
        sa.CheckConstraint("status IN ('PENDING', 'READY', 'FAILED')", name=op.f("ck_logged_models_status")),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.experiment_id"], name=op.f("fk_logged_models_experiment_id_experiments")
        ),
        sa.PrimaryKeyConstraint("model_id", name=op.f("pk_logged_models")),
        sa.UniqueConstraint(
            "experiment_id", "name", "version", name=op.f("uq_logged_models_experiment_id_name_version")
        ),
    )
    with op.batch_alter_table("logged_models", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_logged_models_experiment_id_create_time_model_id"),
            ["experiment_id", "create_time", "model_id"],
            unique=False,
        )

    op.create_table(
        "runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("experiment_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("name", sa.String(length=256), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("start_time", sa.BigInteger(), nullable=False),
        sa.Column("end_time", sa.BigInteger(), nullable=True),
        sa.Column("dataset_id", sa.String(length=34), nullable=True),
        sa.Column("dataset_version", sa.BigInteger(), nullable=True),
        sa.Column("dataset_digest", sa.String(length=64), nullable=True),
        sa.Column("model_id", sa.String(length=34), nullable=True),
        sa.Column("lifecycle_stage", sa.String(length=16), nullable=False),
        sa.Column("deleted_with_experiment", sa.Boolean(), nullable=False),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.Column("update_time", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name=op.f("ck_runs_lifecycle_stage")),
        sa.CheckConstraint("status IN ('RUNNING', 'FINISHED', 'FAILED', 'KILLED')", name=op.f("ck_runs_status")),
        sa.ForeignKeyConstraint(
            ["experiment_id"], ["experiments.experiment_id"], name=op.f("fk_runs_experiment_id_experiments")
        ),
        sa.PrimaryKeyConstraint("run_id", name=op.f("pk_runs")),
    )
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_runs_dataset_id"), ["dataset_id"], unique=False)
        batch_op.create_index(
            batch_op.f("ix_runs_experiment_id_start_time_run_id"),
            ["experiment_id", "start_time", "run_id"],
            unique=False,
        )
        batch_op.create_index(batch_op.f("ix_runs_model_id"), ["model_id"], unique=False)

    op.create_table(
        "logged_model_latest_metrics",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("dataset_digest", sa.String(length=64), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name=op.f("fk_logged_model_latest_metrics_model_id_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint(
            "model_id", "name", "dataset_id", "run_id", name=op.f("pk_logged_model_latest_metrics")
        ),
    )
    with op.batch_alter_table("logged_model_latest_metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_logged_model_latest_metrics_name_model_id"), ["name", "model_id"], unique=False
        )

    op.create_table(
        "logged_model_metrics",
        sa.Column(
            "metric_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.Column("dataset_id", sa.String(length=34), nullable=False),
        sa.Column("dataset_digest", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name=op.f("fk_logged_model_metrics_model_id_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("metric_id", name=op.f("pk_logged_model_metrics")),
    )
    with op.batch_alter_table("logged_model_metrics", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_logged_model_metrics_model_id_name"), ["model_id", "name"], unique=False)

    op.create_table(
        "logged_model_params",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name=op.f("fk_logged_model_params_model_id_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_params")),
    )
    op.create_table(
        "logged_model_tags",
        sa.Column("model_id", sa.String(length=34), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["model_id"],
            ["logged_models.model_id"],
            name=op.f("fk_logged_model_tags_model_id_logged_models"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("model_id", "key", name=op.f("pk_logged_model_tags")),
    )
    op.create_table(
        "run_latest_metrics",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_run_latest_metrics_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "name", name=op.f("pk_run_latest_metrics")),
    )
    with op.batch_alter_table("run_latest_metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_run_latest_metrics_name_value_run_id"), ["name", "value", "run_id"], unique=False
        )

    op.create_table(
        "run_metrics",
        sa.Column(
            "metric_id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Float(), nullable=True),
        sa.Column("step", sa.BigInteger(), nullable=False),
        sa.Column("time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_run_metrics_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("metric_id", name=op.f("pk_run_metrics")),
    )
    with op.batch_alter_table("run_metrics", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_run_metrics_run_id_name_step_time"), ["run_id", "name", "step", "time"], unique=False
        )

    op.create_table(
        "run_params",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_run_params_run_id_runs"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_params")),
    )
    op.create_table(
        "run_tags",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("key", sa.String(length=250), nullable=False),
        sa.Column("value", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.run_id"], name=op.f("fk_run_tags_run_id_runs"), ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "key", name=op.f("pk_run_tags")),
    )
    with op.batch_alter_table("run_tags", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_run_tags_key_run_id"), ["key", "run_id"], unique=False)

    op.create_table(
        "trace_run_links",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("trace_id", sa.String(length=35), nullable=False),
        sa.Column("dataset_record_id", sa.String(length=35), nullable=True),
        sa.Column("create_time", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["run_id"], ["runs.run_id"], name=op.f("fk_trace_run_links_run_id_runs"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["trace_id"], ["traces.trace_id"], name=op.f("fk_trace_run_links_trace_id_traces"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("run_id", "trace_id", name=op.f("pk_trace_run_links")),
    )
    with op.batch_alter_table("trace_run_links", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_trace_run_links_trace_id_run_id"), ["trace_id", "run_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("trace_run_links", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_trace_run_links_trace_id_run_id"))

    op.drop_table("trace_run_links")
    with op.batch_alter_table("run_tags", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_tags_key_run_id"))

    op.drop_table("run_tags")
    op.drop_table("run_params")
    with op.batch_alter_table("run_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_metrics_run_id_name_step_time"))

    op.drop_table("run_metrics")
    with op.batch_alter_table("run_latest_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_run_latest_metrics_name_value_run_id"))

    op.drop_table("run_latest_metrics")
    op.drop_table("logged_model_tags")
    op.drop_table("logged_model_params")
    with op.batch_alter_table("logged_model_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_metrics_model_id_name"))

    op.drop_table("logged_model_metrics")
    with op.batch_alter_table("logged_model_latest_metrics", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_model_latest_metrics_name_model_id"))

    op.drop_table("logged_model_latest_metrics")
    with op.batch_alter_table("runs", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_runs_model_id"))
        batch_op.drop_index(batch_op.f("ix_runs_experiment_id_start_time_run_id"))
        batch_op.drop_index(batch_op.f("ix_runs_dataset_id"))

    op.drop_table("runs")
    with op.batch_alter_table("logged_models", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_logged_models_experiment_id_create_time_model_id"))

    op.drop_table("logged_models")
    op.drop_table("logged_model_names")
