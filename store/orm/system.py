"""Service bookkeeping tables: idempotency keys and service-wide settings."""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, LargeBinary, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from store.orm.base import Base


class RequestIdRow(Base):
    """One row per ``request_id`` seen on a write (SPEC §1.8).

    Claimed (inserted) in the same transaction as the write it guards, so a write and its key
    commit or roll back together; ``response`` is the serialized first result.
    """

    __tablename__ = "request_ids"

    request_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    method: Mapped[str] = mapped_column(String(200))
    fingerprint: Mapped[str] = mapped_column(String(64))
    response: Mapped[bytes | None] = mapped_column(LargeBinary)
    create_time: Mapped[int] = mapped_column(BigInteger)

    __table_args__ = (Index(None, "create_time"),)


class ServiceSettingRow(Base):
    """Settings every server process sharing the database must agree on (page-token key)."""

    __tablename__ = "service_settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
