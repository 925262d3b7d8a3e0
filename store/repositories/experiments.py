"""Experiments (SPEC §2): create, read, rename, soft delete, tags, search.

Names are unique among all experiments, deleted ones included (``uq_experiments_name``).
Writes into a deleted experiment are FAILED_PRECONDITION (``require_active``, used by every
aggregate that lives in an experiment). Row locks: the writes that depend on the experiment's
state start with an UPDATE of its row (bumping ``update_time``), which locks it on PostgreSQL
until commit; on SQLite the write transaction already holds the database lock.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from store.domain import ACTIVE, DELETED, Experiment, Page, SearchQuery
from store.errors import AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted
from store.limits import ID_INT_MAX, TAGS_PER_ENTITY_MAX
from store.orm.base import table
from store.orm.experiments import ExperimentRow, ExperimentTagRow
from store.query.filter_sql import Field, FilterSpec, Kind, MapField
from store.query.filters import Scalar, filter_error
from store.query.keyset import OrderKey, OrderSpec
from store.query.search import run_search

if TYPE_CHECKING:
    from store.uow import UnitOfWork

E = table(ExperimentRow)
T = table(ExperimentTagRow)
_DECIMAL = re.compile(r"[0-9]{1,19}")
_COLUMNS = (E.c.experiment_id, E.c.name, E.c.artifact_location, E.c.lifecycle_stage, E.c.create_time, E.c.update_time)


def _id_literal(value: Scalar) -> Scalar:
    """Experiment ids are strings on the wire: accept '5' as well as 5 in filters."""
    if isinstance(value, str) and _DECIMAL.fullmatch(value) and int(value) <= ID_INT_MAX:
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise filter_error(f"experiment_id values are decimal integers, got {str(value)[:40]!r}")


def _attr(*names: str) -> tuple[str, ...]:
    return tuple(n for name in names for n in (name, f"attributes.{name}", f"attribute.{name}"))


FILTERS = FilterSpec(
    fields=(
        Field(_attr("name"), E.c.name),
        Field(_attr("experiment_id"), E.c.experiment_id, Kind.INTEGER, coerce=_id_literal),
        Field(_attr("create_time", "creation_time"), E.c.create_time, Kind.TIMESTAMP_MS),
        Field(_attr("update_time", "last_update_time"), E.c.update_time, Kind.TIMESTAMP_MS),
    ),
    maps=(
        MapField(
            ("tags", "tag"),
            link=T.c.experiment_id == E.c.experiment_id,
            key_column=T.c.key,
            value_column=T.c.value,
        ),
    ),
)

ORDER = OrderSpec(
    keys=(
        OrderKey(_attr("name"), E.c.name),
        OrderKey(_attr("experiment_id"), E.c.experiment_id),
        OrderKey(_attr("create_time", "creation_time"), E.c.create_time),
        OrderKey(_attr("update_time", "last_update_time"), E.c.update_time),
    ),
    default=("create_time DESC",),
    tiebreaker="experiment_id",
)


def parse_experiment_id(experiment_id: str, field: str = "experiment_id") -> int:
    """The integer behind an experiment id string; INVALID_ARGUMENT if it is not one."""
    if not experiment_id:
        raise InvalidArgument.field(field, "required")
    if not _DECIMAL.fullmatch(experiment_id) or int(experiment_id) > ID_INT_MAX:
        raise InvalidArgument.field(field, f"{experiment_id[:40]!r} is not an experiment id (a decimal integer)")
    return int(experiment_id)


def experiment_deleted(
    experiment_id: str, message: str = "nothing can be written into a deleted experiment"
) -> FailedPrecondition:
    return FailedPrecondition(
        "EXPERIMENT_DELETED", f"experiment {experiment_id!r} is deleted: {message}", {"experiment_id": experiment_id}
    )


def not_found(experiment_id: str) -> NotFound:
    return NotFound(
        "EXPERIMENT_NOT_FOUND", f"experiment {experiment_id!r} does not exist", {"experiment_id": experiment_id}
    )


# Statements of the hot paths are built once: constructing a SELECT per call costs more CPU
# than the database round trip (measured: 490 µs vs 230 µs per GetExperiment on PostgreSQL).
_P = sa.bindparam
_NAME_TAKEN = sa.select(E.c.experiment_id).where(E.c.name == _P("b_name"))
# FOR SHARE on PostgreSQL: writers into an experiment don't wait for each other, but a
# concurrent delete of the experiment waits until they commit (and they wait for it).
_STAGE_OF = (
    sa.select(E.c.experiment_id, E.c.lifecycle_stage).where(E.c.experiment_id == _P("b_id")).with_for_update(read=True)
)
_TOUCH = (
    sa.update(E)
    .where(E.c.experiment_id == _P("b_id"))
    .values(update_time=_P("b_now"))
    .returning(E.c.experiment_id, E.c.name, E.c.lifecycle_stage)
)
_RENAME = sa.update(E).where(E.c.experiment_id == _P("b_id")).values(name=_P("b_name"), update_time=_P("b_now"))
# Row lock until commit on PostgreSQL (SQLite's write transaction already holds the database).
_LOCK = (
    sa.select(E.c.experiment_id, E.c.name, E.c.lifecycle_stage).where(E.c.experiment_id == _P("b_id")).with_for_update()
)
_SET_STAGE = (
    sa.update(E)
    .where(E.c.experiment_id == _P("b_id"), E.c.lifecycle_stage != _P("b_stage"))
    .values(lifecycle_stage=_P("b_stage"), update_time=_P("b_now"))
)
_INSERT_TAGS = sa.insert(T)
_INSERT_TAG = sa.insert(T).values(experiment_id=_P("b_id"), key=_P("b_key"), value=_P("b_value"))
_PG_TAG_ROWS = (
    sa.func.unnest(sa.cast(_P("b_keys"), postgresql.ARRAY(sa.Text)), sa.cast(_P("b_values"), postgresql.ARRAY(sa.Text)))
    .table_valued("k", "v")
    .render_derived()
)
_UPDATE_TAG = sa.update(T).where(T.c.experiment_id == _P("b_id"), T.c.key == _P("b_key")).values(value=_P("b_value"))
_COUNT_TAGS = sa.select(sa.func.count()).where(T.c.experiment_id == _P("b_id"))
_DELETE_TAG = sa.delete(T).where(T.c.experiment_id == _P("b_id"), T.c.key == _P("b_key"))


class ExperimentRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn
        self._root = uow.db.artifact_root

    # -- reads ---------------------------------------------------------------------------

    def get(self, experiment_id: str) -> Experiment:
        key = parse_experiment_id(experiment_id)
        rows = self._uow.fetch(_get_by(self._uow.dialect, "experiment_id"), {"b_key": key})
        if not rows:
            raise not_found(experiment_id)
        return self._domain(rows[0], _tags(rows[0]))

    def get_by_name(self, name: str) -> Experiment:
        rows = self._uow.fetch(_get_by(self._uow.dialect, "name"), {"b_key": name})
        if not rows:
            raise NotFound("EXPERIMENT_NOT_FOUND", f"no experiment is named {name[:300]!r}", {"name": name[:300]})
        return self._domain(rows[0], _tags(rows[0]))

    def search(self, query: SearchQuery, view: str) -> Page[Experiment]:
        """One page of experiments matching ``query`` in lifecycle ``view`` (active/deleted/all)."""
        stmt = _with_tags(self._uow.dialect)
        if view != "all":
            stmt = stmt.where(E.c.lifecycle_stage == view)
        rows, token = run_search(self._uow, "SearchExperiments", stmt, query, FILTERS, ORDER, view)
        return Page([self._domain(r, _tags(r)) for r in rows], token)

    # -- writes --------------------------------------------------------------------------

    def create(self, name: str, artifact_location: str, tags: Mapping[str, str], now_ms: int) -> Experiment:
        values: dict[str, Any] = {
            "name": name,
            "artifact_location": artifact_location or None,
            "lifecycle_stage": ACTIVE,
            "create_time": now_ms,
            "update_time": now_ms,
        }
        postgres = self._uow.dialect == "postgresql"
        if postgres:  # the experiment and its tags in one statement (one round trip)
            values |= {"b_keys": list(tags), "b_values": list(tags.values())}
            inserted = self._uow.fetch(_PG_INSERT_WITH_TAGS, values)
        else:
            inserted = self._uow.fetch(_insert_experiment(self._uow.dialect), values)
        if not inserted:
            raise AlreadyExists(
                "EXPERIMENT_ALREADY_EXISTS",
                f"an experiment named {name!r} already exists (deleted experiments keep their names)",
                {"name": name},
            )
        new_id = inserted[0].experiment_id
        if tags and not postgres:
            self._insert_tags(new_id, tags)
        row = (new_id, name, values["artifact_location"], ACTIVE, now_ms, now_ms)
        return self._domain(row, dict(tags))

    def rename(self, experiment_id: str, name: str, now_ms: int) -> Experiment:
        """Rename; renaming to the current name changes nothing (not even ``update_time``)."""
        current = self._conn.execute(_LOCK, {"b_id": parse_experiment_id(experiment_id)}).first()
        if current is None:
            raise not_found(experiment_id)
        if current.lifecycle_stage == DELETED:
            raise experiment_deleted(experiment_id, "a deleted experiment cannot be renamed")
        if current.name != name:
            if self._conn.execute(_NAME_TAKEN, {"b_name": name}).first() is not None:
                raise AlreadyExists(
                    "EXPERIMENT_ALREADY_EXISTS", f"an experiment named {name!r} already exists", {"name": name}
                )
            self._conn.execute(_RENAME, {"b_id": current.experiment_id, "b_name": name, "b_now": now_ms})
        return self.get(experiment_id)

    def set_lifecycle_stage(self, experiment_id: str, stage: str, now_ms: int) -> Experiment:
        """Soft delete (``deleted``) or undelete (``active``); setting the current stage is a no-op.

        The experiment's runs follow: deleting it deletes its active runs (marked as deleted
        with the experiment), undeleting it restores exactly those (``RunRepository``).
        """
        key = parse_experiment_id(experiment_id)
        if self._conn.execute(_SET_STAGE, {"b_id": key, "b_stage": stage, "b_now": now_ms}).rowcount:
            self._uow.runs.follow_experiment(key, stage, now_ms)
        return self.get(experiment_id)

    def set_tag(self, experiment_id: str, key: str, value: str, now_ms: int) -> None:
        exp_id = self.require_active(experiment_id, now_ms)
        if self._conn.execute(_UPDATE_TAG, {"b_id": exp_id, "b_key": key, "b_value": value}).rowcount:
            return
        if self._conn.execute(_COUNT_TAGS, {"b_id": exp_id}).scalar_one() >= TAGS_PER_ENTITY_MAX:
            raise ResourceExhausted(
                "TOO_MANY_TAGS",
                f"experiment {experiment_id!r} already has {TAGS_PER_ENTITY_MAX} tags",
                {"experiment_id": experiment_id, "limit": str(TAGS_PER_ENTITY_MAX)},
            )
        self._conn.execute(_INSERT_TAGS, {"experiment_id": exp_id, "key": key, "value": value})

    def delete_tag(self, experiment_id: str, key: str, now_ms: int) -> None:
        exp_id = self.require_active(experiment_id, now_ms)
        self._conn.execute(_DELETE_TAG, {"b_id": exp_id, "b_key": key})

    def require_active(self, experiment_id: str, now_ms: int | None = None) -> int:
        """Check that the experiment exists and is active before writing into it.

        With ``now_ms`` the experiment's ``update_time`` is bumped, which also locks its row
        until commit. Without, the row gets a shared lock: other writers into the experiment
        proceed, a concurrent delete waits for this transaction. Returns the integer id.
        """
        if now_ms is not None:
            row = self._touch(experiment_id, now_ms)
        else:
            rows = self._uow.fetch(_STAGE_OF, {"b_id": parse_experiment_id(experiment_id)})
            if not rows:
                raise not_found(experiment_id)
            row = rows[0]
        if row.lifecycle_stage == DELETED:
            raise experiment_deleted(experiment_id)
        return int(row.experiment_id)

    # -- helpers -------------------------------------------------------------------------

    def _touch(self, experiment_id: str, now_ms: int) -> Any:
        """Bump update_time (locking the row) and return its id, name and stage."""
        rows = self._uow.fetch(_TOUCH, {"b_id": parse_experiment_id(experiment_id), "b_now": now_ms})
        if not rows:
            raise not_found(experiment_id)
        return rows[0]

    def _insert_tags(self, experiment_id: int, tags: Mapping[str, str]) -> None:
        """SQLite (PostgreSQL inserts them with the experiment: ``_PG_INSERT_WITH_TAGS``)."""
        self._uow.fetch_many(_INSERT_TAG, [{"b_id": experiment_id, "b_key": k, "b_value": v} for k, v in tags.items()])

    def _domain(self, row: Any, tags: Mapping[str, str]) -> Experiment:
        # Positional unpacking: attribute access on a SQLAlchemy Row costs ~1 µs per field.
        key, name, location, stage, created, updated = row[:6]
        exp_id = str(key)
        return Experiment(exp_id, name, location or f"{self._root}/{exp_id}", stage, dict(tags), created, updated)


@cache
def _with_tags(dialect: str) -> sa.Select[Any]:
    """Experiment columns plus its tags as one JSON object (one row per experiment, one round trip)."""
    agg = sa.func.json_object_agg if dialect == "postgresql" else sa.func.json_group_object
    tags = sa.select(agg(T.c.key, T.c.value)).where(T.c.experiment_id == E.c.experiment_id).scalar_subquery()
    return sa.select(*_COLUMNS, tags.label("tags"))


@cache
def _get_by(dialect: str, column: str) -> sa.Select[Any]:
    return _with_tags(dialect).where(E.c[column] == _P("b_key"))


def _tags(row: Any) -> dict[str, str]:
    """The aggregated tags of a row: a dict (PostgreSQL json), JSON text (SQLite) or NULL (none)."""
    value = row[6]
    if value is None:
        return {}
    return dict(json.loads(value) if isinstance(value, str) else value)


@cache
def _insert_experiment(dialect: str) -> Any:
    """INSERT … ON CONFLICT DO NOTHING RETURNING experiment_id, for ``dialect``."""
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    columns = ("name", "artifact_location", "lifecycle_stage", "create_time", "update_time")
    return insert(E).values({c: _P(c) for c in columns}).on_conflict_do_nothing().returning(E.c.experiment_id)


def _pg_insert_with_tags() -> Any:
    """PostgreSQL: ``_insert_experiment`` and the new experiment's tags in one statement; no row
    (and no tag) when the name is taken. The tags come as two arrays (``b_keys``, ``b_values``):
    psycopg's pipelined executemany of them once cost more CPU than the rest of CreateExperiment.
    One round trip fewer than two statements: ~30 µs less server and ~25 µs less PostgreSQL CPU
    per CreateExperiment, and 5-12% more calls/s at 16 callers."""
    new = _insert_experiment("postgresql").cte("new_experiment")
    rows = sa.select(new.c.experiment_id, _PG_TAG_ROWS.c.k, _PG_TAG_ROWS.c.v).join_from(new, _PG_TAG_ROWS, sa.true())
    tags = sa.insert(T).from_select(["experiment_id", "key", "value"], rows).cte("new_tags")
    return sa.select(new.c.experiment_id).add_cte(tags)


_PG_INSERT_WITH_TAGS = _pg_insert_with_tags()
