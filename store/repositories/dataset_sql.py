"""SQL pieces shared by the dataset repositories: list parameters, JSON columns, errors.

List parameters: one bound parameter per list, so statements compile once and run on the
driver cursor (``UnitOfWork.fetch``): ``= ANY(CAST(:p AS TEXT[]))`` on PostgreSQL, ``IN
(SELECT value FROM json_each(:p))`` with a JSON array on SQLite.

JSON columns are read as text on both backends (``CAST(col AS TEXT)`` on PostgreSQL) and
parsed with ``loads``, which brings integers beyond 2**53 back to doubles: JSONB prints
``1e+100`` as a 101-digit integer, and the merge compares values in canonical form.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from functools import partial
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql

from store.canonical import normalize_number
from store.errors import NotFound
from store.query.bulk import BulkWrite

if TYPE_CHECKING:
    from store.uow import UnitOfWork

loads = partial(json.loads, parse_int=lambda text: normalize_number(int(text)))


def in_list(dialect: str, column: ColumnElement[Any], name: str, element: Any = sa.Text) -> ColumnElement[bool]:
    """``column`` is one of the values of list parameter ``name`` (see ``list_param``)."""
    if dialect == "postgresql":
        return column == sa.any_(sa.cast(sa.bindparam(name), postgresql.ARRAY(element)))
    each = sa.func.json_each(sa.bindparam(name, type_=sa.Text)).table_valued("value")
    return column.in_(sa.select(each.c.value))


def list_param(dialect: str, values: list[Any]) -> Any:
    return values if dialect == "postgresql" else json.dumps(values)


def json_text(dialect: str, column: ColumnElement[Any]) -> ColumnElement[Any]:
    """A JSON column as text (parse it with ``loads``)."""
    text = sa.cast(column, sa.Text) if dialect == "postgresql" else sa.type_coerce(column, sa.Text)
    return text.label(getattr(column, "name", "json"))


def json_param(dialect: str, name: str) -> ColumnElement[Any]:
    """A JSON document given as text, for a JSON column."""
    param = sa.bindparam(name, type_=sa.Text)
    return sa.cast(param, postgresql.JSONB) if dialect == "postgresql" else param


def json_value(value: Any) -> Any:
    """A JSON column's value as fetched: parsed already (PostgreSQL json), or text (SQLite)."""
    return json.loads(value) if isinstance(value, str) else value


def insert_rows(uow: UnitOfWork, table: sa.Table, columns: tuple[str, ...], rows: Sequence[Sequence[Any]]) -> None:
    """Insert many rows: COPY on PostgreSQL, ``executemany`` on SQLite.

    COPY rows are formatted by psycopg's C extension; the array parameters of ``BulkWrite``
    are escaped element by element in Python, which cost ~0.4 s per 1,000 records with their
    JSON and serialized protobuf (measured).
    """
    if not rows:
        return
    if uow.dialect != "postgresql":
        BulkWrite(table, columns).run(uow, rows)
        return
    sql = f"COPY {table.name} ({', '.join(columns)}) FROM STDIN"
    dbapi_conn: Any = uow.conn.connection.dbapi_connection
    with uow._driver_errors(sql, dbapi_conn), dbapi_conn.cursor() as cursor, cursor.copy(sql) as copy:
        for row in rows:
            copy.write_row(row)


def dataset_not_found(dataset_id: str) -> NotFound:
    return NotFound("DATASET_NOT_FOUND", f"dataset {dataset_id!r} does not exist", {"dataset_id": dataset_id})


def version_not_found(dataset_id: str, version: int, current: int) -> NotFound:
    return NotFound(
        "DATASET_VERSION_NOT_FOUND",
        f"dataset {dataset_id!r} has no version {version} (its current version is {current})",
        {"dataset_id": dataset_id, "version": str(version), "current_version": str(current)},
    )


def record_not_found(dataset_id: str, record_id: str) -> NotFound:
    return NotFound(
        "DATASET_RECORD_NOT_FOUND",
        f"dataset {dataset_id!r} has no record {record_id!r} at this version",
        {"dataset_id": dataset_id, "dataset_record_id": record_id},
    )
