"""Tables of the experiment aggregate (SPEC §2). Times are epoch milliseconds (BIGINT)."""

from __future__ import annotations

from sqlalchemy import BigInteger, CheckConstraint, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import AutoIncrementId, Base


class ExperimentRow(Base):
    __tablename__ = "experiments"

    experiment_id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    # Unique among all experiments, deleted ones included (uq_experiments_name).
    name: Mapped[str] = mapped_column(String(256), unique=True)
    # NULL: the default location, rendered as "<artifact root>/<experiment_id>" when read.
    artifact_location: Mapped[str | None] = mapped_column(String(2048))
    lifecycle_stage: Mapped[str] = mapped_column(String(16), default="active")
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name="lifecycle_stage"),
        # Default search order (create_time DESC, experiment_id) and the other orders.
        Index(None, "create_time", "experiment_id"),
        Index(None, "update_time", "experiment_id"),
    )


class ExperimentTagRow(Base):
    __tablename__ = "experiment_tags"

    experiment_id: Mapped[int] = mapped_column(
        AutoIncrementId, ForeignKey("experiments.experiment_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (
        # `tags.<k> ...` filters: EXISTS probes by (experiment_id, key) through the primary key;
        # `tags.<k> = 'v'` over many experiments starts from the rows holding that value. A hash
        # index on PostgreSQL: values up to 8,000 characters overflow a B-tree entry there.
        Index(None, "value", postgresql_using="hash"),
        Index(None, "key", "experiment_id"),
    )
