"""Tables of label schemas and labeling sessions (SPEC §8).

Times are epoch milliseconds. A session's items are numbered in the order they were added
(``position``, from the session's ``next_position`` counter); an item's state is kept as
``open`` / ``completed`` / ``skipped`` and PENDING vs IN_PROGRESS is derived at read time from
its submissions and unexpired leases. Each rater's relation to an item is one row of
``labeling_item_raters`` (``submitted`` or ``skipped``), their answers are
``labeling_labels`` (one per schema), and a claim in progress is a ``labeling_leases`` row.
Everything below a session goes with it (ON DELETE CASCADE); items go with their trace.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, CheckConstraint, ForeignKey, Index, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import AutoIncrementId, Base
from store.orm.traces import TRACE_ID_LEN

SCHEMA_ID_LEN = 35  # "ls-" + 32 hex
SESSION_ID_LEN = 36  # "lbs-" + 32 hex
ITEM_ID_LEN = 36  # "lsi-" + 32 hex
RATER_LEN = 250


def _session_fk() -> ForeignKey:
    return ForeignKey("labeling_sessions.labeling_session_id", ondelete="CASCADE")


def _item_fk() -> ForeignKey:
    return ForeignKey("labeling_items.item_id", ondelete="CASCADE")


class LabelSchemaRow(Base):
    __tablename__ = "label_schemas"

    schema_id: Mapped[str] = mapped_column(String(SCHEMA_ID_LEN), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(AutoIncrementId, ForeignKey("experiments.experiment_id"))
    name: Mapped[str] = mapped_column(String(250))
    type: Mapped[str] = mapped_column(String(16))
    title: Mapped[str] = mapped_column(String(250), default="")
    instruction: Mapped[str] = mapped_column(Text, default="")
    enable_comment: Mapped[bool] = mapped_column(Boolean, default=False)
    input_kind: Mapped[str] = mapped_column(String(16))
    # The input's settings as JSON text ({"options": [...], "multi_select": false}, …).
    input_config: Mapped[str] = mapped_column(Text)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("type IN ('feedback', 'expectation')", name="type"),
        CheckConstraint("input_kind IN ('pass_fail', 'categorical', 'numeric', 'text')", name="input_kind"),
        Index(None, "experiment_id", "name", unique=True),
    )


class LabelingSessionRow(Base):
    __tablename__ = "labeling_sessions"

    labeling_session_id: Mapped[str] = mapped_column(String(SESSION_ID_LEN), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(AutoIncrementId, ForeignKey("experiments.experiment_id"))
    name: Mapped[str] = mapped_column(String(250))
    instructions: Mapped[str] = mapped_column(Text, default="")
    # JSON list of rater ids; empty: anyone may rate.
    assigned_users: Mapped[str] = mapped_column(Text, default="[]")
    raters_per_item: Mapped[int] = mapped_column(Integer)
    dataset_id: Mapped[str | None] = mapped_column(String(34))
    state: Mapped[str] = mapped_column(String(8))
    lease_seconds: Mapped[int] = mapped_column(Integer)
    next_position: Mapped[int] = mapped_column(BigInteger, default=0)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("state IN ('open', 'closed')", name="state"),
        CheckConstraint("raters_per_item >= 1", name="raters_per_item"),
        Index(None, "experiment_id", "name", unique=True),
        Index(None, "experiment_id", "create_time", "labeling_session_id"),
    )


class LabelingSessionSchemaRow(Base):
    """The schemas a session asks for, in order."""

    __tablename__ = "labeling_session_schemas"

    labeling_session_id: Mapped[str] = mapped_column(String(SESSION_ID_LEN), _session_fk(), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True)
    schema_id: Mapped[str] = mapped_column(String(SCHEMA_ID_LEN), ForeignKey("label_schemas.schema_id"))

    __table_args__ = (Index(None, "schema_id"),)


class LabelingItemRow(Base):
    __tablename__ = "labeling_items"

    item_id: Mapped[str] = mapped_column(String(ITEM_ID_LEN), primary_key=True)
    labeling_session_id: Mapped[str] = mapped_column(String(SESSION_ID_LEN), _session_fk())
    position: Mapped[int] = mapped_column(BigInteger)
    trace_id: Mapped[str | None] = mapped_column(
        String(TRACE_ID_LEN), ForeignKey("traces.trace_id", ondelete="CASCADE")
    )
    dataset_id: Mapped[str | None] = mapped_column(String(34))
    dataset_record_id: Mapped[str | None] = mapped_column(String(35))
    # "t:<trace id>" or "r:<dataset id>:<record id>": one item per source and session.
    source_key: Mapped[str] = mapped_column(String(80))
    state: Mapped[str] = mapped_column(String(10), default="open")
    submitted: Mapped[int] = mapped_column(Integer, default=0)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("state IN ('open', 'completed', 'skipped')", name="state"),
        CheckConstraint("(trace_id IS NULL) <> (dataset_record_id IS NULL)", name="one_source"),
        Index(None, "labeling_session_id", "position", unique=True),
        Index(None, "labeling_session_id", "source_key", unique=True),
        Index(None, "labeling_session_id", "state", "position"),
        Index(None, "trace_id"),
    )


class LabelingItemRaterRow(Base):
    """A rater's submission or skip of an item."""

    __tablename__ = "labeling_item_raters"

    item_id: Mapped[str] = mapped_column(String(ITEM_ID_LEN), _item_fk(), primary_key=True)
    rater: Mapped[str] = mapped_column(String(RATER_LEN), primary_key=True)
    labeling_session_id: Mapped[str] = mapped_column(String(SESSION_ID_LEN), _session_fk())
    status: Mapped[str] = mapped_column(String(10))
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        CheckConstraint("status IN ('submitted', 'skipped')", name="status"),
        Index(None, "labeling_session_id", "rater"),
    )


class LabelingLabelRow(Base):
    """A rater's answer to one schema for one item (the latest submission's)."""

    __tablename__ = "labeling_labels"

    item_id: Mapped[str] = mapped_column(String(ITEM_ID_LEN), _item_fk(), primary_key=True)
    rater: Mapped[str] = mapped_column(String(RATER_LEN), primary_key=True)
    schema_id: Mapped[str] = mapped_column(String(SCHEMA_ID_LEN), primary_key=True)
    labeling_session_id: Mapped[str] = mapped_column(String(SESSION_ID_LEN), _session_fk())
    # The answer as JSON text.
    value: Mapped[str] = mapped_column(Text)
    comment: Mapped[str | None] = mapped_column(Text)
    # The HUMAN assessment written on the item's trace (none for dataset record items).
    assessment_id: Mapped[str | None] = mapped_column(String(34))

    __table_args__ = (Index(None, "labeling_session_id", "schema_id"),)


class LabelingLeaseRow(Base):
    """A rater's claim on an item; lapsed leases are ignored and replaced."""

    __tablename__ = "labeling_leases"

    item_id: Mapped[str] = mapped_column(String(ITEM_ID_LEN), _item_fk(), primary_key=True)
    rater: Mapped[str] = mapped_column(String(RATER_LEN), primary_key=True)
    labeling_session_id: Mapped[str] = mapped_column(String(SESSION_ID_LEN), _session_fk())
    expire_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "labeling_session_id", "rater"),)
