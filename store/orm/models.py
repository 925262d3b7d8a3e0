"""Tables of the logged model aggregate (SPEC §6). Times are epoch milliseconds.

``version`` numbers come from ``logged_model_names``: one counter row per (experiment, name),
incremented by ``INSERT … ON CONFLICT DO UPDATE … RETURNING`` inside the creating transaction.
Concurrent creators of one name queue on that row (PostgreSQL) or on the database write lock
(SQLite), and a rolled-back creation rolls its increment back, so numbers have neither gaps
nor duplicates; ``uq_logged_models_experiment_id_name_version`` makes the database the judge.

Metrics are kept as a history (``logged_model_metrics``) and as the latest point per (name,
dataset, run) (``logged_model_latest_metrics``, '' for "none"), which reads, filters and
ordering use. A NaN value is stored as NULL, as for runs.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import AutoIncrementId, Base
from store.orm.runs import MODEL_ID_LEN, RUN_ID_LEN


class LoggedModelNameRow(Base):
    __tablename__ = "logged_model_names"

    experiment_id: Mapped[int] = mapped_column(
        AutoIncrementId, ForeignKey("experiments.experiment_id"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(256), primary_key=True)
    last_version: Mapped[int] = mapped_column(BigInteger)


class LoggedModelRow(Base):
    __tablename__ = "logged_models"

    model_id: Mapped[str] = mapped_column(String(MODEL_ID_LEN), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(AutoIncrementId, ForeignKey("experiments.experiment_id"))
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(BigInteger)
    model_type: Mapped[str | None] = mapped_column(String(256))
    source_run_id: Mapped[str | None] = mapped_column(String(RUN_ID_LEN))
    status: Mapped[str] = mapped_column(String(8))
    status_message: Mapped[str | None] = mapped_column(String(1000))
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("status IN ('PENDING', 'READY', 'FAILED')", name="status"),
        CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name="lifecycle_stage"),
        UniqueConstraint("experiment_id", "name", "version"),
        Index(None, "experiment_id", "create_time", "model_id"),
    )


class LoggedModelParamRow(Base):
    __tablename__ = "logged_model_params"

    model_id: Mapped[str] = mapped_column(
        String(MODEL_ID_LEN), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelTagRow(Base):
    __tablename__ = "logged_model_tags"

    model_id: Mapped[str] = mapped_column(
        String(MODEL_ID_LEN), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class LoggedModelMetricRow(Base):
    """Every logged metric point (history)."""

    __tablename__ = "logged_model_metrics"

    metric_id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    model_id: Mapped[str] = mapped_column(
        String(MODEL_ID_LEN), ForeignKey("logged_models.model_id", ondelete="CASCADE")
    )
    name: Mapped[str] = mapped_column(String(250))
    value: Mapped[float | None] = mapped_column(Float)  # NULL: NaN
    step: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)
    dataset_id: Mapped[str] = mapped_column(String(34))  # '' when none
    dataset_digest: Mapped[str] = mapped_column(String(64))  # '' when none
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN))  # '' when none

    __table_args__ = (Index(None, "model_id", "name"),)


class LoggedModelLatestMetricRow(Base):
    """The latest point (highest step, then latest time) per (model, name, dataset, run)."""

    __tablename__ = "logged_model_latest_metrics"

    model_id: Mapped[str] = mapped_column(
        String(MODEL_ID_LEN), ForeignKey("logged_models.model_id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    dataset_id: Mapped[str] = mapped_column(String(34), primary_key=True)  # '' when none
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)  # '' when none
    dataset_digest: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Float)  # NULL: NaN
    step: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "name", "model_id"),)
