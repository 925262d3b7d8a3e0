"""Tables of the evaluation dataset aggregate (SPEC §5). Times are epoch milliseconds.

Records are versioned by validity ranges (see ``store/repositories/dataset_records.py``):
each row is one version of one record, valid from ``valid_from`` up to (not including)
``valid_to``; NULL means current. Partial indexes over the current rows
(``WHERE valid_to IS NULL``, on PostgreSQL and SQLite alike) make current reads and the
identity check as cheap as in an unversioned table.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, ForeignKey, Index, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import AutoIncrementId, Base, JsonDocument

DATASET_ID_LEN = 34  # "d-" + 32 hex
RECORD_ID_LEN = 35  # "dr-" + 32 hex
_CURRENT = text("valid_to IS NULL")


def _dataset_fk() -> Any:
    return ForeignKey("evaluation_datasets.dataset_id", ondelete="CASCADE")


class DatasetRow(Base):
    __tablename__ = "evaluation_datasets"

    dataset_id: Mapped[str] = mapped_column(String(DATASET_ID_LEN), primary_key=True)
    name: Mapped[str] = mapped_column(String(256))
    version: Mapped[int] = mapped_column(BigInteger)
    num_records: Mapped[int] = mapped_column(BigInteger)
    # Positions give records their creation order; the last one handed out.
    last_position: Mapped[int] = mapped_column(BigInteger)
    # Sum modulo 2**256 of the current records' content hashes (hex): the digest's input.
    content_sum: Mapped[str] = mapped_column(String(64))
    digest: Mapped[str] = mapped_column(String(64))
    # Per-field summaries that GetDataset renders as schema and profile (store/dataset_stats.py).
    field_summary: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
    created_by: Mapped[str | None] = mapped_column(Text)
    last_updated_by: Mapped[str | None] = mapped_column(Text)
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (
        Index(None, "create_time", "dataset_id"),
        Index(None, "update_time", "dataset_id"),
        Index(None, "name", "dataset_id"),
    )


class DatasetTagRow(Base):
    __tablename__ = "evaluation_dataset_tags"

    dataset_id: Mapped[str] = mapped_column(String(DATASET_ID_LEN), _dataset_fk(), primary_key=True)
    key: Mapped[str] = mapped_column(String(250), primary_key=True)
    value: Mapped[str] = mapped_column(Text)


class DatasetExperimentRow(Base):
    __tablename__ = "evaluation_dataset_experiments"

    dataset_id: Mapped[str] = mapped_column(String(DATASET_ID_LEN), _dataset_fk(), primary_key=True)
    experiment_id: Mapped[int] = mapped_column(
        AutoIncrementId, ForeignKey("experiments.experiment_id"), primary_key=True
    )

    __table_args__ = (Index(None, "experiment_id", "dataset_id"),)


class DatasetRecordRow(Base):
    """One version of one record."""

    __tablename__ = "evaluation_dataset_records"

    # No foreign key to evaluation_datasets: PostgreSQL checks one per inserted row (a lookup
    # of the dataset row each), 2.8 ms of a 1,000-record COPY's 16.7 (measured). Every write
    # into a dataset's records holds the dataset row's lock (``DatasetRepository.lock``), so
    # the dataset exists until commit; DeleteDataset deletes the records under that lock.
    dataset_id: Mapped[str] = mapped_column(String(DATASET_ID_LEN), primary_key=True)
    # Creation order within the dataset; shared by every version of the record.
    position: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    valid_from: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    valid_to: Mapped[int | None] = mapped_column(BigInteger)
    dataset_record_id: Mapped[str] = mapped_column(String(RECORD_ID_LEN))
    # SHA-256 (hex) of the canonical JSON of inputs: the record's identity (store/canonical.py).
    input_hash: Mapped[str] = mapped_column(String(64))
    # The record's content as canonical JSON text (store/canonical.py): {"e": expectations,
    # "i": inputs, "o": outputs (absent when none), "s": {"d": source data, "t": source type},
    # "t": tags}. Kept verbatim as text, not JSONB: it is what content_hash hashes, the merge
    # parses it back as it is, and inserting it costs no JSONB parse (SQL reads it with
    # CAST(content AS JSONB) on PostgreSQL, SQLite's JSON functions take the text).
    content: Mapped[str] = mapped_column(Text)
    # SHA-256 (hex) of that text.
    content_hash: Mapped[str] = mapped_column(String(64))
    create_time: Mapped[int] = mapped_column(BigInteger)
    update_time: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(Text)
    last_updated_by: Mapped[str | None] = mapped_column(Text)
    # The record version as the server serialized it (mlgenai.v1.DatasetRecord): what reads return.
    proto: Mapped[bytes] = mapped_column(LargeBinary)

    __table_args__ = (
        # The database enforces one current record per inputs.
        Index(
            "uq_evaluation_dataset_records_current_input",
            "dataset_id",
            "input_hash",
            unique=True,
            postgresql_where=_CURRENT,
            sqlite_where=_CURRENT,
        ),
        # Current records in creation order (ListRecords without a version).
        Index(
            "ix_evaluation_dataset_records_current_position",
            "dataset_id",
            "position",
            postgresql_where=_CURRENT,
            sqlite_where=_CURRENT,
        ),
        Index(None, "dataset_id", "dataset_record_id"),
    )


class DatasetVersionRow(Base):
    __tablename__ = "evaluation_dataset_versions"

    dataset_id: Mapped[str] = mapped_column(String(DATASET_ID_LEN), _dataset_fk(), primary_key=True)
    version: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64))
    num_records: Mapped[int] = mapped_column(BigInteger)
    added_count: Mapped[int] = mapped_column(BigInteger)
    updated_count: Mapped[int] = mapped_column(BigInteger)
    deleted_count: Mapped[int] = mapped_column(BigInteger)
    created_by: Mapped[str | None] = mapped_column(Text)
    create_time: Mapped[int] = mapped_column(BigInteger)


class DatasetFieldRow(Base):
    """Aggregates of one field path over the current records (store/dataset_stats.py)."""

    __tablename__ = "evaluation_dataset_fields"

    dataset_id: Mapped[str] = mapped_column(String(DATASET_ID_LEN), _dataset_fk(), primary_key=True)
    section: Mapped[str] = mapped_column(String(12), primary_key=True)  # inputs / outputs / expectations
    path: Mapped[str] = mapped_column(String(500), primary_key=True)
    stats: Mapped[dict[str, Any]] = mapped_column(JsonDocument)
