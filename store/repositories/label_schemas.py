"""Label schemas (SPEC §8.1): create, read, list by name, update, delete.

A schema's name is unique within its experiment (the unique index on (experiment_id, name)).
Create is ``INSERT … ON CONFLICT DO NOTHING``, so two concurrent creates of one name give one
schema and one ALREADY_EXISTS on either backend. A rename checks the name first; on
PostgreSQL a concurrent rename or create can still win the race, and the unique violation of
that index (classified by constraint name) is ALREADY_EXISTS too.

Writes into a deleted experiment are FAILED_PRECONDITION (``ExperimentRepository.require_active``).
A schema asked for by a labeling session cannot be deleted: delete locks the schema row
(PostgreSQL ``FOR UPDATE``, which also waits for a session being created with it) and then
looks for references.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Sequence
from dataclasses import asdict, replace
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import sqlalchemy.exc as sa_exc

from store.dberrors import constraint_name
from store.domain import Page, SearchQuery
from store.errors import AlreadyExists, FailedPrecondition, NotFound
from store.label_domain import LabelSchemaChanges, LabelSchemaDef, NewLabelSchema, apply_changes
from store.orm.base import table
from store.orm.labeling import LabelingSessionSchemaRow, LabelSchemaRow
from store.query.filter_sql import FilterSpec
from store.query.keyset import OrderKey, OrderSpec
from store.query.search import run_search
from store.repositories.experiments import parse_experiment_id

if TYPE_CHECKING:
    from store.uow import UnitOfWork

S = table(LabelSchemaRow)
SS = table(LabelingSessionSchemaRow)
_P = sa.bindparam
_UNIQUE_NAME = "ix_label_schemas_experiment_id_name"
_REFERENCED_BY = "fk_labeling_session_schemas_schema_id_label_schemas"
_NO_FILTERS = FilterSpec()
_BY_NAME = OrderSpec(
    keys=(OrderKey(("name",), S.c.name), OrderKey(("schema_id",), S.c.schema_id)),
    default=("name",),
    tiebreaker="schema_id",
)
_COLUMNS = (
    S.c.schema_id, S.c.experiment_id, S.c.name, S.c.type, S.c.title, S.c.instruction, S.c.enable_comment,
    S.c.input_kind, S.c.input_config, S.c.create_time, S.c.update_time,
)  # fmt: skip
_SELECT = sa.select(*_COLUMNS)
_GET = _SELECT.where(S.c.schema_id == _P("b_id"))
_LOCK = _GET.with_for_update()
_NAME_TAKEN = sa.select(S.c.schema_id).where(S.c.experiment_id == _P("b_exp"), S.c.name == _P("b_name"))
_IN_USE = sa.select(SS.c.labeling_session_id).where(SS.c.schema_id == _P("b_id")).limit(1)
_DELETE = sa.delete(S).where(S.c.schema_id == _P("b_id"))


def new_schema_id() -> str:
    return "ls-" + secrets.token_hex(16)


def schema_not_found(schema_id: str) -> NotFound:
    return NotFound("LABEL_SCHEMA_NOT_FOUND", f"label schema {schema_id!r} does not exist", {"schema_id": schema_id})


def _name_taken(experiment_id: str, name: str) -> AlreadyExists:
    return AlreadyExists(
        "LABEL_SCHEMA_ALREADY_EXISTS",
        f"experiment {experiment_id!r} already has a label schema named {name[:300]!r}",
        {"experiment_id": experiment_id, "name": name[:300]},
    )


class LabelSchemaRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- reads ---------------------------------------------------------------------------

    def get(self, schema_id: str) -> LabelSchemaDef:
        row = self._conn.execute(_GET, {"b_id": schema_id}).first()
        if row is None:
            raise schema_not_found(schema_id)
        return schema_of(row)

    def get_many(self, schema_ids: Sequence[str], *, lock: bool = False) -> list[LabelSchemaDef]:
        """The schemas in the order given (repeats included); NOT_FOUND for the first missing.

        ``lock`` (write transactions only) takes a shared lock on the rows until commit, so a
        concurrent DeleteLabelSchema waits and then sees the caller's references.
        """
        wanted = list(dict.fromkeys(schema_ids))
        stmt = _SELECT.where(S.c.schema_id.in_(wanted))
        if lock:
            stmt = stmt.order_by(S.c.schema_id).with_for_update(read=True)
        found = {row.schema_id: schema_of(row) for row in self._conn.execute(stmt)} if wanted else {}
        for schema_id in schema_ids:
            if schema_id not in found:
                raise schema_not_found(schema_id)
        return [found[s] for s in schema_ids]

    def by_experiment(self, experiment_id: str, query: SearchQuery) -> Page[LabelSchemaDef]:
        """One page of the experiment's schemas by name (NOT_FOUND for an unknown experiment)."""
        self._uow.experiments.get(experiment_id)
        exp = parse_experiment_id(experiment_id)
        stmt = _SELECT.where(S.c.experiment_id == exp)
        rows, token = run_search(self._uow, "ListLabelSchemas", stmt, query, _NO_FILTERS, _BY_NAME, exp)
        return Page([schema_of(r) for r in rows], token)

    # -- writes --------------------------------------------------------------------------

    def create(self, new: NewLabelSchema, now_ms: int) -> LabelSchemaDef:
        exp = self._uow.experiments.require_active(new.experiment_id)
        schema = LabelSchemaDef(
            schema_id=new_schema_id(),
            experiment_id=str(exp),
            name=new.name,
            type=new.type,
            title=new.title,
            instruction=new.instruction,
            enable_comment=new.enable_comment,
            input_kind=new.input_kind,
            config=new.config,
            create_time=now_ms,
            update_time=now_ms,
        )
        stmt = (
            self._uow.insert(S)
            .values(_row(schema, exp))
            .on_conflict_do_nothing(index_elements=[S.c.experiment_id, S.c.name])
            .returning(S.c.schema_id)
        )
        if self._conn.execute(stmt).first() is None:
            raise _name_taken(new.experiment_id, new.name)
        return schema

    def update(
        self, schema_id: str, changes: LabelSchemaChanges, now_ms: int, *, field_prefix: str = ""
    ) -> LabelSchemaDef:
        """Apply ``changes`` (validated as a whole, see ``apply_changes``); a change to nothing
        keeps ``update_time``."""
        current = self._locked(schema_id)
        self._uow.experiments.require_active(current.experiment_id)
        updated = apply_changes(current, changes, field_prefix)
        if updated == current:
            return current
        exp = int(current.experiment_id)
        renamed = updated.name != current.name
        if renamed and self._conn.execute(_NAME_TAKEN, {"b_exp": exp, "b_name": updated.name}).first() is not None:
            raise _name_taken(current.experiment_id, updated.name)
        values = {
            "name": updated.name,
            "title": updated.title,
            "instruction": updated.instruction,
            "enable_comment": updated.enable_comment,
            "input_config": _config_text(updated.config),
            "update_time": now_ms,
        }
        try:
            self._conn.execute(sa.update(S).where(S.c.schema_id == schema_id).values(values))
        except sa_exc.IntegrityError as err:  # PostgreSQL: a concurrent write took the name
            if constraint_name(err) == _UNIQUE_NAME:
                raise _name_taken(current.experiment_id, updated.name) from err
            raise
        return replace(updated, update_time=now_ms)

    def delete(self, schema_id: str) -> None:
        """Delete; FAILED_PRECONDITION while a labeling session asks for the schema."""
        current = self._locked(schema_id)
        session = self._conn.execute(_IN_USE, {"b_id": schema_id}).scalar()
        if session is not None:
            raise _in_use(current, session)
        try:
            self._conn.execute(_DELETE, {"b_id": schema_id})
        except sa_exc.IntegrityError as err:  # a session referencing it slipped in
            if constraint_name(err) == _REFERENCED_BY:
                raise _in_use(current, "") from err
            raise

    # -- helpers -------------------------------------------------------------------------

    def _locked(self, schema_id: str) -> LabelSchemaDef:
        """The schema, its row locked until commit (PostgreSQL; SQLite holds the database)."""
        row = self._conn.execute(_LOCK, {"b_id": schema_id}).first()
        if row is None:
            raise schema_not_found(schema_id)
        return schema_of(row)


def _in_use(schema: LabelSchemaDef, session_id: str) -> FailedPrecondition:
    metadata = {"schema_id": schema.schema_id}
    if session_id:
        metadata["labeling_session_id"] = session_id
    where = f" (session {session_id!r})" if session_id else ""
    return FailedPrecondition(
        "LABEL_SCHEMA_IN_USE",
        f"label schema {schema.name!r} is asked for by a labeling session{where}; delete the session first",
        metadata,
    )


def _config_text(config: dict[str, Any]) -> str:
    return json.dumps(config, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _row(schema: LabelSchemaDef, experiment_id: int) -> dict[str, Any]:
    values = asdict(schema)
    values.pop("config")
    values["experiment_id"] = experiment_id
    values["input_config"] = _config_text(schema.config)
    return values


def schema_of(row: Any, prefix: str = "") -> LabelSchemaDef:
    """A schema from a row holding the ``label_schemas`` columns, named ``<prefix><column>``."""

    def col(name: str) -> Any:
        return getattr(row, prefix + name)

    return LabelSchemaDef(
        schema_id=col("schema_id"),
        experiment_id=str(col("experiment_id")),
        name=col("name"),
        type=col("type"),
        title=col("title"),
        instruction=col("instruction"),
        enable_comment=bool(col("enable_comment")),
        input_kind=col("input_kind"),
        config=json.loads(col("input_config")),
        create_time=int(col("create_time")),
        update_time=int(col("update_time")),
    )
