"""SQL pieces shared by the dataset repositories: JSON columns, errors. (List parameters,
``in_list`` and ``list_param``, are ``store/query/raw.py``'s.)

Records' ``content`` is canonical JSON text (``store/canonical.py``), parsed with ``loads``;
JSON columns arrive parsed (PostgreSQL) or as text (SQLite): ``store/query/raw.py::json_value``.

PostgreSQL statements whose cost depends on the plan (the merge's lookups) and whose lists
are long run through ``fetch_binary``: binary parameters and results, see its docstring.
"""

from __future__ import annotations

import dataclasses
import json
import re
from collections.abc import Callable
from functools import cache, partial
from typing import TYPE_CHECKING, Any

import orjson
import sqlalchemy as sa
from sqlalchemy import ColumnElement
from sqlalchemy.dialects import postgresql
from sqlalchemy.sql import ClauseElement

from store.canonical import normalize_number
from store.errors import NotFound
from store.query import pg_exec
from store.query.raw import RawStatement, compile_raw

if TYPE_CHECKING:
    from store.uow import UnitOfWork

_loads = partial(json.loads, parse_int=lambda text: normalize_number(int(text)))
_orjson_loads = orjson.loads
_JSON_ERROR = orjson.JSONDecodeError


def loads(text: str) -> Any:
    """Parse a record's ``content`` (canonical JSON, ``store/canonical.py``) back to its values.

    orjson, ~4x faster than ``json.loads``: canonical JSON has no integer beyond 2**53, so
    both give the same values. Text orjson refuses (an integer beyond 64 bits, which only
    non-canonical text has) goes to ``json.loads``, whose hook brings such integers back to
    doubles.
    """
    try:
        return _orjson_loads(text)
    except _JSON_ERROR:
        return _loads(text)


def json_param(dialect: str, name: str) -> ColumnElement[Any]:
    """A JSON document given as text, for a JSON column."""
    param = sa.bindparam(name, type_=sa.Text)
    return sa.cast(param, postgresql.JSONB) if dialect == "postgresql" else param


class Tid(sa.types.UserDefinedType[str]):
    """PostgreSQL's ``tid`` (a row version's physical address, ``ctid``), for casts."""

    cache_ok = True

    def get_col_spec(self, **kw: Any) -> str:
        return "TID"


def fetch_binary(
    uow: UnitOfWork, stmt: ClauseElement, params: dict[str, Any], meanwhile: Callable[[], object] | None = None
) -> tuple[list[Any], int]:
    """PostgreSQL: ``UnitOfWork.fetch`` with parameters and results in binary format; the rows
    and the row count. ``meanwhile``: work run while PostgreSQL executes it (``pg_exec.run``).

    Binary ``bytea`` arrives as is (not as hex text to decode), and binary text arrays are not
    quoted element by element (see ``store/query/bulk.py``).
    """
    raw = _binary_sql(stmt, uow.conn.dialect)
    dbapi_conn: Any = uow.conn.connection.dbapi_connection
    with uow._driver_errors(raw.sql, dbapi_conn):
        return pg_exec.run(dbapi_conn, raw, params, binary=True, meanwhile=meanwhile)


@cache
def _binary_sql(stmt: ClauseElement, dialect: Any) -> RawStatement:
    raw = compile_raw(stmt, dialect)
    return dataclasses.replace(raw, sql=re.sub(r"%\((b_\w+)\)s", r"%(\1)b", raw.sql))


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
