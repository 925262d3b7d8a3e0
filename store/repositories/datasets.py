"""Evaluation datasets (SPEC §5.1, §5.6): create, read, search, delete, tags, experiments.

The records of a dataset are in ``dataset_records.py`` (writes) and ``dataset_versions.py``
(reads); this module owns the dataset row. Its ``version``, ``num_records``, ``digest`` and
``field_summary`` change only with the records; every write into a dataset's records starts
with ``lock`` (``SELECT … FOR UPDATE`` of the dataset row on PostgreSQL; SQLite write
transactions already hold the database), which serializes the merges into one dataset and
numbers their versions without gaps.

The digest is ``SHA-256("<num_records>:<content sum>")`` where the content sum is the sum
modulo 2**256 of the current records' content hashes (``store/dataset_merge.py``): equal
records give equal digests in any order, any change to a record (tags included) or a delete
changes it, and each change updates it in O(1).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store.canonical import sha256_hex
from store.dataset_domain import USER_TAG, Dataset
from store.domain import Page, SearchQuery
from store.errors import ResourceExhausted
from store.limits import TAGS_PER_ENTITY_MAX
from store.orm.base import table
from store.orm.datasets import DatasetExperimentRow, DatasetRecordRow, DatasetRow, DatasetTagRow
from store.query.bulk import BulkWrite
from store.query.filter_sql import Field, FilterSpec, Kind, MapField
from store.query.keyset import OrderKey, OrderSpec
from store.query.raw import json_value
from store.query.search import run_search
from store.repositories.dataset_sql import dataset_not_found
from store.repositories.experiments import parse_experiment_id

if TYPE_CHECKING:
    from store.uow import UnitOfWork

D = table(DatasetRow)
DT = table(DatasetTagRow)
DX = table(DatasetExperimentRow)
R = table(DatasetRecordRow)
_P = sa.bindparam
EMPTY_SUM = "0" * 64

FILTERS = FilterSpec(
    fields=(
        Field(("name", "attributes.name"), D.c.name),
        Field(("created_by", "attributes.created_by"), D.c.created_by, nullable=True),
        Field(("last_updated_by", "attributes.last_updated_by"), D.c.last_updated_by, nullable=True),
        Field(("create_time", "created_time", "attributes.create_time"), D.c.create_time, Kind.TIMESTAMP_MS),
        Field(("update_time", "last_update_time", "attributes.update_time"), D.c.update_time, Kind.TIMESTAMP_MS),
    ),
    maps=(
        MapField(("tags", "tag"), link=DT.c.dataset_id == D.c.dataset_id, key_column=DT.c.key, value_column=DT.c.value),
    ),
)
ORDER = OrderSpec(
    keys=(
        OrderKey(("name",), D.c.name),
        OrderKey(("create_time", "created_time"), D.c.create_time),
        OrderKey(("update_time", "last_update_time"), D.c.update_time),
        OrderKey(("dataset_id",), D.c.dataset_id),
    ),
    default=("create_time DESC",),
    tiebreaker="dataset_id",
)

_COLUMNS = (
    D.c.dataset_id, D.c.name, D.c.digest, D.c.version, D.c.num_records, D.c.field_summary, D.c.created_by,
    D.c.last_updated_by, D.c.create_time, D.c.update_time,
)  # fmt: skip
_INSERT = sa.insert(D).values({c.name: _P(c.name) for c in D.c})
_UPSERT_TAGS = BulkWrite(DT, ("dataset_id", "key", "value"), ("dataset_id", "key"), ("value",))
_LINK = BulkWrite(DX, ("dataset_id", "experiment_id"), ("dataset_id", "experiment_id"))
_COUNT_TAGS = sa.select(sa.func.count()).where(DT.c.dataset_id == _P("b_id"))
_DELETE_TAG = sa.delete(DT).where(DT.c.dataset_id == _P("b_id"), DT.c.key == _P("b_key"))
_DELETE = sa.delete(D).where(D.c.dataset_id == _P("b_id"))
_DELETE_RECORDS = sa.delete(R).where(R.c.dataset_id == _P("b_id"))
_TOUCH = sa.update(D).where(D.c.dataset_id == _P("b_id")).values(update_time=_P("b_now")).returning(D.c.dataset_id)
_VERSION = sa.select(D.c.version).where(D.c.dataset_id == _P("b_id"))
# The dataset row, locked until commit, for the writes into its records.
_LOCK = (
    sa.select(D.c.version, D.c.num_records, D.c.last_position, D.c.content_sum, D.c.digest, D.c.field_summary)
    .where(D.c.dataset_id == _P("b_id"))
    .with_for_update()
)


def new_dataset_id() -> str:
    return "d-" + secrets.token_hex(16)


def digest_of(num_records: int, content_sum: int) -> str:
    return sha256_hex(f"{num_records}:{content_sum:064x}")


class DatasetRepository:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    # -- reads ---------------------------------------------------------------------------

    def get(self, dataset_id: str) -> Dataset:
        rows = self._uow.fetch(_get_by_id(self._uow.dialect), {"b_id": dataset_id})
        if not rows:
            raise dataset_not_found(dataset_id)
        return _domain(rows[0])

    def current_version(self, dataset_id: str) -> int:
        rows = self._uow.fetch(_VERSION, {"b_id": dataset_id})
        if not rows:
            raise dataset_not_found(dataset_id)
        return int(rows[0][0])

    def search(self, experiment_ids: Sequence[str], query: SearchQuery) -> Page[Dataset]:
        ids = sorted({parse_experiment_id(e, "experiment_ids") for e in experiment_ids})
        stmt = _full(self._uow.dialect)
        if ids:
            stmt = stmt.where(sa.exists().where(DX.c.dataset_id == D.c.dataset_id, DX.c.experiment_id.in_(ids)))
        rows, token = run_search(self._uow, "SearchDatasets", stmt, query, FILTERS, ORDER, ids)
        return Page([_domain(r) for r in rows], token)

    # -- writes --------------------------------------------------------------------------

    def create(self, name: str, experiment_ids: Sequence[str], tags: Mapping[str, str], now_ms: int) -> Dataset:
        exp_ids = self._active_experiments(experiment_ids)
        dataset_id = new_dataset_id()
        user = tags.get(USER_TAG)
        values = {
            "dataset_id": dataset_id, "name": name, "version": 0, "num_records": 0, "last_position": 0,
            "content_sum": EMPTY_SUM, "digest": digest_of(0, 0), "field_summary": {}, "created_by": user,
            "last_updated_by": user, "create_time": now_ms, "update_time": now_ms,
        }  # fmt: skip
        self._conn.execute(_INSERT, values)
        _UPSERT_TAGS.run(self._uow, [(dataset_id, k, v) for k, v in sorted(tags.items())])
        _LINK.run(self._uow, [(dataset_id, e) for e in exp_ids])
        return self.get(dataset_id)

    def delete(self, dataset_id: str) -> None:
        """Hard delete: under the dataset row's lock, which every write into its records holds
        until commit, its records (they have no foreign key: ``DatasetRecordRow``), then the
        row; versions, fields, tags and links cascade. An unknown dataset deletes nothing."""
        if self._uow.fetch(_LOCK, {"b_id": dataset_id}):
            self._conn.execute(_DELETE_RECORDS, {"b_id": dataset_id})
            self._conn.execute(_DELETE, {"b_id": dataset_id})

    def set_tags(self, dataset_id: str, tags: Mapping[str, str], now_ms: int) -> None:
        self._touch(dataset_id, now_ms)
        _UPSERT_TAGS.run(self._uow, [(dataset_id, k, v) for k, v in sorted(tags.items())])
        count = self._conn.execute(_COUNT_TAGS, {"b_id": dataset_id}).scalar_one()
        if count > TAGS_PER_ENTITY_MAX:
            raise ResourceExhausted(
                "TOO_MANY_TAGS",
                f"dataset {dataset_id!r} would have {count} tags; at most {TAGS_PER_ENTITY_MAX}",
                {"dataset_id": dataset_id, "limit": str(TAGS_PER_ENTITY_MAX)},
            )

    def delete_tag(self, dataset_id: str, key: str, now_ms: int) -> None:
        self._touch(dataset_id, now_ms)
        self._conn.execute(_DELETE_TAG, {"b_id": dataset_id, "b_key": key})

    def add_experiments(self, dataset_id: str, experiment_ids: Sequence[str], now_ms: int) -> Dataset:
        self._touch(dataset_id, now_ms)
        exp_ids = self._active_experiments(experiment_ids)
        _LINK.run(self._uow, [(dataset_id, e) for e in exp_ids])
        return self.get(dataset_id)

    def remove_experiments(self, dataset_id: str, experiment_ids: Sequence[str], now_ms: int) -> Dataset:
        ids = sorted({parse_experiment_id(e, "experiment_ids") for e in experiment_ids})
        self._touch(dataset_id, now_ms)
        self._conn.execute(sa.delete(DX).where(DX.c.dataset_id == dataset_id, DX.c.experiment_id.in_(ids)))
        return self.get(dataset_id)

    def lock(self, dataset_id: str) -> Any:
        """The dataset row's record bookkeeping, locked until commit (NOT_FOUND if missing)."""
        rows = self._uow.fetch(_LOCK, {"b_id": dataset_id})
        if not rows:
            raise dataset_not_found(dataset_id)
        return rows[0]

    # -- helpers -------------------------------------------------------------------------

    def _touch(self, dataset_id: str, now_ms: int) -> None:
        """Bump update_time, which also locks the row until commit; NOT_FOUND if missing."""
        if not self._uow.fetch(_TOUCH, {"b_id": dataset_id, "b_now": now_ms}):
            raise dataset_not_found(dataset_id)

    def _active_experiments(self, experiment_ids: Sequence[str]) -> list[int]:
        """The experiments' integer ids, sorted; each must exist and be active."""
        by_id = {parse_experiment_id(e, "experiment_ids"): e for e in experiment_ids}
        return [self._uow.experiments.require_active(by_id[k]) for k in sorted(by_id)]  # locks in id order


@cache
def _full(dialect: str) -> sa.Select[Any]:
    """Dataset columns plus its tags (one JSON object) and experiment ids (one JSON array)."""
    pg = dialect == "postgresql"
    tag_agg = sa.func.json_object_agg if pg else sa.func.json_group_object
    id_agg = sa.func.json_agg if pg else sa.func.json_group_array
    tags = sa.select(tag_agg(DT.c.key, DT.c.value)).where(DT.c.dataset_id == D.c.dataset_id).scalar_subquery()
    exps = sa.select(id_agg(DX.c.experiment_id)).where(DX.c.dataset_id == D.c.dataset_id).scalar_subquery()
    return sa.select(*_COLUMNS, tags.label("tags"), exps.label("experiment_ids"))


@cache
def _get_by_id(dialect: str) -> sa.Select[Any]:
    return _full(dialect).where(D.c.dataset_id == _P("b_id"))


def _domain(row: Any) -> Dataset:
    (dataset_id, name, digest, version, num_records, summary, created_by, last_updated_by, created, updated,
     tags, exps) = row[:12]  # fmt: skip
    return Dataset(
        dataset_id=dataset_id,
        name=name,
        digest=digest,
        version=version,
        num_records=num_records,
        tags=dict(json_value(tags) or {}),
        experiment_ids=[str(e) for e in sorted(json_value(exps) or ())],
        summary=json_value(summary) or {},
        created_by=created_by,
        last_updated_by=last_updated_by,
        create_time_ms=created,
        update_time_ms=updated,
    )
