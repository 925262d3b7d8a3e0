"""Tables of the evaluation run aggregate (SPEC §7) and the trace ↔ run links (SPEC §3.5).

Times are epoch milliseconds. Metric values are kept twice: every logged point in
``run_metrics`` (the history), and the latest point per name in ``run_latest_metrics``, which
reads, filters (``metrics.<k> > x``) and ordering use without scanning the history. A NaN
value is stored as NULL (SQLite cannot store NaN); a metric value is never otherwise NULL.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Boolean, CheckConstraint, Float, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import AutoIncrementId, Base
from store.orm.traces import TRACE_ID_LEN

RUN_ID_LEN = 32
MODEL_ID_LEN = 34  # "m-" + 32 hex
RECORD_ID_LEN = 35  # "dr-" + 32 hex


class RunRow(Base):
    __tablename__ = "runs"

    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(AutoIncrementId, ForeignKey("experiments.experiment_id"))
    name: Mapped[str] = mapped_column(String(256))
    status: Mapped[str] = mapped_column(String(16))
    start_time: Mapped[int] = mapped_column(BigInteger)
    end_time: Mapped[int | None] = mapped_column(BigInteger)
    # The pinned dataset version; no foreign key: a run keeps naming a dataset deleted later.
    dataset_id: Mapped[str | None] = mapped_column(String(34))
    dataset_version: Mapped[int | None] = mapped_column(BigInteger)
    dataset_digest: Mapped[str | None] = mapped_column(String(64))
    model_id: Mapped[str | None] = mapped_column(String(MODEL_ID_LEN))
    lifecycle_stage: Mapped[str] = mapped_column(String(16))
    # Deleted together with its experiment (and restored with it), not by DeleteRun.
    deleted_with_experiment: Mapped[bool] = mapped_column(Boolean, default=False)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("status IN ('RUNNING', 'FINISHED', 'FAILED', 'KILLED')", name="status"),
        CheckConstraint("lifecycle_stage IN ('active', 'deleted')", name="lifecycle_stage"),
        Index(None, "experiment_id", "start_time", "run_id"),
        Index(None, "model_id"),
        Index(None, "dataset_id"),
    )


class RunParamRow(Base):
    __tablename__ = "run_params"

    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LEN), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class RunTagRow(Base):
    __tablename__ = "run_tags"

    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LEN), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)

    __table_args__ = (Index(None, "key", "run_id"),)


class RunMetricRow(Base):
    """Every logged metric point (history)."""

    __tablename__ = "run_metrics"

    metric_id: Mapped[int] = mapped_column(AutoIncrementId, primary_key=True, autoincrement=True)
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), ForeignKey("runs.run_id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(250))
    value: Mapped[float | None] = mapped_column(Float)  # NULL: NaN
    step: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "run_id", "name", "step", "time"),)


class RunLatestMetricRow(Base):
    """The latest point (highest step, then latest time) of each metric of a run."""

    __tablename__ = "run_latest_metrics"

    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LEN), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    name: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[float | None] = mapped_column(Float)  # NULL: NaN
    step: Mapped[int] = mapped_column(BigInteger)
    time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "name", "value", "run_id"),)


class TraceRunLinkRow(Base):
    """A trace linked to an evaluation run (LinkTracesToRun), with the dataset record it
    evaluated when the caller said which (CompareRuns pairs traces by it)."""

    __tablename__ = "trace_run_links"

    run_id: Mapped[str] = mapped_column(
        String(RUN_ID_LEN), ForeignKey("runs.run_id", ondelete="CASCADE"), primary_key=True
    )
    trace_id: Mapped[str] = mapped_column(
        String(TRACE_ID_LEN), ForeignKey("traces.trace_id", ondelete="CASCADE"), primary_key=True
    )
    dataset_record_id: Mapped[str | None] = mapped_column(String(RECORD_ID_LEN))
    create_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "trace_id", "run_id"),)


def _code_point(length: int | None = None) -> Any:
    """Text compared and ordered by code point on both backends (collation "C" on PostgreSQL,
    SQLite's default BINARY), so keyed pages come out in the same order everywhere."""
    return String(length).with_variant(String(length, collation="C"), "postgresql")


def _run_fk() -> ForeignKey:
    return ForeignKey("runs.run_id", ondelete="CASCADE")


class RunResultStateRow(Base):
    """Whether a run's cached results are current: its summaries (``run_result_names``, for
    GetRunResults) and its keyed pairs (``run_result_pairs``, for CompareRuns), each rebuilt on
    demand by its own reader.

    Every write that can change a run's results (its assessments, its trace links, the
    request-id tag of its traces, deleting its traces) raises ``generation`` in the same
    transaction; a rebuild records the generation it computed from in ``names_generation`` or
    ``pairs_generation``. A part is current when its generation equals ``generation``."""

    __tablename__ = "run_result_state"

    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), _run_fk(), primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)
    names_generation: Mapped[int | None] = mapped_column(BigInteger)
    pairs_generation: Mapped[int | None] = mapped_column(BigInteger)
    # With the names: the number of distinct traces with valid feedback.
    trace_count: Mapped[int | None] = mapped_column(BigInteger)
    # With the pairs: JSON {name: number of pair keys}.
    pair_keys: Mapped[str | None] = mapped_column(Text)


class RunResultNameRow(Base):
    """GetRunResults' summary of one feedback name of a run, as last rebuilt."""

    __tablename__ = "run_result_names"

    # No foreign key (runs are never removed): checking one per row cost PostgreSQL 1 s per
    # 30,000 rows of a rebuild (a key-share lock on the same run row each time).
    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(_code_point(250), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger)
    numeric_count: Mapped[int] = mapped_column(BigInteger)
    mean: Mapped[float | None] = mapped_column(Float)
    min: Mapped[float | None] = mapped_column(Float)
    max: Mapped[float | None] = mapped_column(Float)
    p50: Mapped[float | None] = mapped_column(Float)
    p90: Mapped[float | None] = mapped_column(Float)
    pass_rate: Mapped[float | None] = mapped_column(Float)
    errors: Mapped[int] = mapped_column(BigInteger)


class RunResultPairRow(Base):
    """A run's value per (feedback name, pair key) as CompareRuns pairs them, as last rebuilt:
    the mean of the valid, non-error numeric feedback of that name on the run's traces with
    that key, and the smallest such trace id."""

    __tablename__ = "run_result_pairs"

    run_id: Mapped[str] = mapped_column(String(RUN_ID_LEN), primary_key=True)  # no foreign key: see above
    name: Mapped[str] = mapped_column(_code_point(250), primary_key=True)
    pair_key: Mapped[str] = mapped_column(_code_point(), primary_key=True)
    value: Mapped[float] = mapped_column(Float)
    trace_id: Mapped[str] = mapped_column(String(TRACE_ID_LEN))
