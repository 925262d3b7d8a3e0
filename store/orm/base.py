"""Declarative base shared by every table.

The naming convention gives every constraint and index a predictable name: database errors
are classified by constraint name (``store/dberrors.py``), and Alembic batch mode on SQLite
needs named constraints to drop them.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, BigInteger, Integer, MetaData, Table
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Free-form documents: JSONB on PostgreSQL, JSON (text) on SQLite (SPEC §1.4).
JsonDocument: Any = JSON().with_variant(JSONB(), "postgresql")

# A 64-bit auto-increment primary key. On SQLite only INTEGER PRIMARY KEY is the rowid alias
# that autoincrements (it is 64-bit there anyway).
AutoIncrementId: Any = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def table(model: type[Base]) -> Table:
    """The Core ``Table`` of a model (repositories use Core statements on hot paths)."""
    result = model.__table__
    assert isinstance(result, Table)
    return result
