"""What a labeling session's labels add up to (SPEC §8.3–§8.4): agreement and consensus.

``LabelingResults`` reads, with a constant number of statements whatever the session's size:

* ``agreement``: per session schema (in the session's order), the agreement statistic of
  ``store/agreement.py`` over the items with at least two submissions (two statements: the
  session with its schemas, then every label of those items);
* ``sync_records``: for every COMPLETED item, the record SyncToDataset merges (plain JSON; the
  server builds the protobuf origin and runs the merge in the same transaction).

Consensus of an EXPECTATION schema over an item's raters (``consensus``): pass/fail,
categorical and text take the majority value (a multi-select answer counts as its sorted set of
options), ties going to the value submitted first (the rater's first submission time, then the
rater id); numeric takes the median (the mean of the two middle values for an even count).
Where the raters' values are not all equal, the record gets the tag
``mlgenai.labeling.disagreement.<schema name>`` holding the JSON object {rater: value}.
"""

from __future__ import annotations

import hashlib
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from store import limits
from store.agreement import AgreementResult, agreement
from store.canonical import dumps, normalize, normalize_number
from store.errors import FailedPrecondition, NotFound
from store.label_domain import CATEGORICAL, EXPECTATION, NUMERIC, TEXT, LabelSchemaDef
from store.labeling_domain import ITEM_COMPLETED, SUBMITTED
from store.orm.base import table
from store.orm.datasets import DatasetRecordRow
from store.orm.labeling import (
    LabelingItemRaterRow,
    LabelingItemRow,
    LabelingLabelRow,
    LabelingSessionRow,
    LabelingSessionSchemaRow,
    LabelSchemaRow,
)
from store.repositories.dataset_sql import loads
from store.repositories.label_schemas import schema_of
from store.repositories.labeling_sql import session_not_found

if TYPE_CHECKING:
    from store.uow import UnitOfWork

SESS = table(LabelingSessionRow)
SS = table(LabelingSessionSchemaRow)
S = table(LabelSchemaRow)
I = table(LabelingItemRow)  # noqa: E741
IR = table(LabelingItemRaterRow)
L = table(LabelingLabelRow)
R = table(DatasetRecordRow)
_P = sa.bindparam

SESSION_TAG = "mlgenai.labeling.session"
DISAGREEMENT_TAG = "mlgenai.labeling.disagreement."

# The session with its schemas in order (one row with NULL schema columns when it has none).
_SCHEMA_COLUMNS = (
    S.c.schema_id, S.c.experiment_id, S.c.name, S.c.type, S.c.title, S.c.instruction, S.c.enable_comment,
    S.c.input_kind, S.c.input_config, S.c.create_time, S.c.update_time,
)  # fmt: skip
_SESSION = (
    sa.select(SESS.c.labeling_session_id, SESS.c.dataset_id, *_SCHEMA_COLUMNS)
    .select_from(
        SESS.outerjoin(SS, SS.c.labeling_session_id == SESS.c.labeling_session_id).outerjoin(
            S, S.c.schema_id == SS.c.schema_id
        )
    )
    .where(SESS.c.labeling_session_id == _P("b_id"))
    .order_by(SS.c.position)
)
# Every label of the items with at least two submissions.
_RATED_LABELS = (
    sa.select(L.c.schema_id, L.c.item_id, L.c.rater, L.c.value)
    .select_from(L.join(I, I.c.item_id == L.c.item_id))
    .where(L.c.labeling_session_id == _P("b_id"), I.c.submitted >= 2)
    .order_by(L.c.schema_id, I.c.position, L.c.rater)
)
# The COMPLETED items in order.
_COMPLETED_ITEMS = (
    sa.select(I.c.item_id, I.c.trace_id, I.c.dataset_id, I.c.dataset_record_id)
    .where(I.c.labeling_session_id == _P("b_id"), I.c.state == ITEM_COMPLETED)
    .order_by(I.c.position)
)
# The submitted labels of the COMPLETED items for some schemas, in submission order.
_COMPLETED_LABELS = (
    sa.select(L.c.item_id, L.c.schema_id, L.c.rater, L.c.value)
    .select_from(
        L.join(I, I.c.item_id == L.c.item_id).join(IR, sa.and_(IR.c.item_id == L.c.item_id, IR.c.rater == L.c.rater))
    )
    .where(
        L.c.labeling_session_id == _P("b_id"),
        I.c.state == ITEM_COMPLETED,
        IR.c.status == SUBMITTED,
        L.c.schema_id.in_(_P("b_schemas", expanding=True)),
    )
    .order_by(L.c.item_id, L.c.schema_id, IR.c.create_time, L.c.rater)
)
# The current version of the records that COMPLETED items show.
_ITEM_RECORDS = (
    sa.select(I.c.item_id, R.c.content)
    .select_from(
        I.join(
            R,
            sa.and_(
                R.c.dataset_id == I.c.dataset_id,
                R.c.dataset_record_id == I.c.dataset_record_id,
                R.c.valid_to.is_(None),
            ),
        )
    )
    .where(I.c.labeling_session_id == _P("b_id"), I.c.state == ITEM_COMPLETED, I.c.dataset_record_id.is_not(None))
)


@dataclass(frozen=True, slots=True)
class SessionSchemas:
    labeling_session_id: str
    dataset_id: str  # "" when the session has none
    schemas: list[LabelSchemaDef]


@dataclass(frozen=True, slots=True)
class SchemaAgreement:
    schema: LabelSchemaDef
    result: AgreementResult


@dataclass(slots=True)
class SyncRecord:
    """One COMPLETED item as a record to merge (plain, normalized JSON values).

    Trace items carry ``trace_id`` and only the labels' ``expectations`` and ``tags``: the
    server takes inputs, outputs and the trace's own expectations from the trace, as
    CreateRecordsFromTraces does. Record items carry the record's current content.
    """

    item_id: str
    trace_id: str
    expectations: dict[str, Any]
    tags: dict[str, str]
    disagreed: bool
    inputs: dict[str, Any] = field(default_factory=dict)
    has_outputs: bool = False
    outputs: Any = None
    source_type: str = "HUMAN"
    source_data: dict[str, Any] = field(default_factory=dict)


class LabelingResults:
    def __init__(self, uow: UnitOfWork) -> None:
        self._uow = uow
        self._conn = uow.conn

    def session(self, session_id: str) -> SessionSchemas:
        """The session's dataset and schemas in order (NOT_FOUND if missing)."""
        rows = self._conn.execute(_SESSION, {"b_id": session_id}).all()
        if not rows:
            raise session_not_found(session_id)
        schemas = [schema_of(row) for row in rows if row.schema_id is not None]
        return SessionSchemas(session_id, rows[0].dataset_id or "", schemas)

    def agreement(self, session_id: str) -> list[SchemaAgreement]:
        """Per session schema, in order: agreement over the items with two submissions or more."""
        session = self.session(session_id)
        by_schema: defaultdict[str, list[tuple[str, str, Any]]] = defaultdict(list)
        for schema_id, item_id, rater, value in self._conn.execute(_RATED_LABELS, {"b_id": session_id}):
            by_schema[schema_id].append((item_id, rater, json.loads(value)))
        out = []
        for schema in session.schemas:
            labels = by_schema.get(schema.schema_id, [])
            result = agreement(labels, schema.input_kind)
            if schema.input_kind == TEXT:  # no statistic, but the counts
                items = sum(n >= 2 for n in _ratings_per_item(labels).values())
                result = AgreementResult(result.statistic, None, items, result.raters, None)
            out.append(SchemaAgreement(schema, result))
        return out

    def sync_target(self, session: SessionSchemas, dataset_id: str) -> str:
        """The dataset to sync into: ``dataset_id``, else the session's (FAILED_PRECONDITION NO_DATASET)."""
        target = dataset_id or session.dataset_id
        if not target:
            raise FailedPrecondition(
                "NO_DATASET",
                f"labeling session {session.labeling_session_id!r} has no dataset; name one in the request",
                {"labeling_session_id": session.labeling_session_id},
            )
        return target

    def sync_records(self, session: SessionSchemas) -> list[SyncRecord]:
        """One record per COMPLETED item, in item order (see the module docstring).

        NOT_FOUND (DATASET_RECORD_NOT_FOUND) when an item's dataset record no longer exists.
        """
        session_id = session.labeling_session_id
        items = self._conn.execute(_COMPLETED_ITEMS, {"b_id": session_id}).all()
        if not items:
            return []
        expected = {s.schema_id: s for s in session.schemas if s.type == EXPECTATION}
        ratings: defaultdict[tuple[str, str], list[tuple[str, Any]]] = defaultdict(list)
        if expected:
            params = {"b_id": session_id, "b_schemas": sorted(expected)}
            for item_id, schema_id, rater, value in self._conn.execute(_COMPLETED_LABELS, params):
                ratings[item_id, schema_id].append((rater, json.loads(value)))
        contents = {}
        if any(item.trace_id is None for item in items):
            found = self._conn.execute(_ITEM_RECORDS, {"b_id": session_id})
            contents = {item_id: loads(text) for item_id, text in found}
        out = []
        for item in items:
            record = SyncRecord(item.item_id, item.trace_id or "", {}, {SESSION_TAG: session_id}, False)
            if item.trace_id is None:
                _fill_from_record(record, item, contents.get(item.item_id))
            for schema in expected.values():
                given = ratings.get((item.item_id, schema.schema_id))
                if not given:
                    continue
                value, disagreed = consensus(schema, given)
                record.expectations[schema.name] = value
                if disagreed:
                    record.disagreed = True
                    record.tags[disagreement_key(schema.name)] = disagreement_value(given)
            out.append(record)
        return out


def _fill_from_record(record: SyncRecord, item: Any, content: dict[str, Any] | None) -> None:
    if content is None:
        raise NotFound(
            "DATASET_RECORD_NOT_FOUND",
            f"item {item.item_id!r} shows record {item.dataset_record_id!r} of dataset {item.dataset_id!r}, "
            "which no longer exists; remove the item to sync the session",
            {"item_id": item.item_id, "dataset_id": item.dataset_id, "dataset_record_id": item.dataset_record_id},
        )
    record.inputs = content["i"]
    record.has_outputs = "o" in content
    record.outputs = content.get("o")
    record.expectations = dict(content.get("e") or {})
    source = content.get("s") or {}
    record.source_type = source.get("t") or "HUMAN"
    record.source_data = dict(source.get("d") or {})


def _ratings_per_item(labels: Sequence[tuple[str, str, Any]]) -> dict[str, int]:
    raters: defaultdict[str, set[str]] = defaultdict(set)
    for item_id, rater, value in labels:
        if value is not None:
            raters[item_id].add(rater)
    return {item_id: len(r) for item_id, r in raters.items()}


# -- consensus -----------------------------------------------------------------------------


def consensus(schema: LabelSchemaDef, ratings: Sequence[tuple[str, Any]]) -> tuple[Any, bool]:
    """The value an EXPECTATION schema's ``ratings`` ((rater, value) in submission order, at
    least one) agree on, and whether the raters disagreed (not all values equal)."""
    if schema.input_kind == NUMERIC:
        numbers = sorted(float(v) for _, v in ratings)
        middle = len(numbers) // 2
        median = numbers[middle] if len(numbers) % 2 else (numbers[middle - 1] + numbers[middle]) / 2
        return normalize_number(median), numbers[0] != numbers[-1]
    multi = schema.input_kind == CATEGORICAL and bool(schema.config.get("multi_select"))
    keyed = [(_option_set(v) if multi else normalize(v)) for _, v in ratings]
    counts: dict[str, list[Any]] = {}  # canonical text -> [count, value], in first-submission order
    for value in keyed:
        entry = counts.setdefault(dumps(value), [0, value])
        entry[0] += 1
    best = max(entry[0] for entry in counts.values())
    winner = next(entry[1] for entry in counts.values() if entry[0] == best)  # the earliest of the best
    return winner, len(counts) > 1


def _option_set(value: Any) -> list[Any]:
    options = set(value) if isinstance(value, list) else {value}
    return sorted(options, key=lambda o: (not isinstance(o, str), str(o)))


def disagreement_key(schema_name: str) -> str:
    """``mlgenai.labeling.disagreement.<name>``; a name too long for a tag key is cut and
    suffixed with a hash of the whole name, so two long names keep two keys."""
    key = DISAGREEMENT_TAG + schema_name
    if len(key) <= limits.TAG_KEY_MAX:
        return key
    digest = hashlib.sha256(schema_name.encode("utf-8", "surrogatepass")).hexdigest()[:12]
    return key[: limits.TAG_KEY_MAX - 13] + "~" + digest


def disagreement_value(ratings: Sequence[tuple[str, Any]]) -> str:
    """The JSON object {rater: value} (keys sorted), within the tag value limit: values are
    clipped first ("…" ending a string shortened), then raters dropped from the end, the key
    "…" telling how many."""
    given = {rater: normalize(value) for rater, value in ratings}
    text = dumps(given)
    if len(text) <= limits.TAG_VALUE_MAX:
        return text
    for width in (1_000, 200, 40):
        clipped = {rater: _clip(value, width) for rater, value in given.items()}
        text = dumps(clipped)
        if len(text) <= limits.TAG_VALUE_MAX:
            return text
    kept = sorted(clipped)
    while kept:
        kept.pop()
        shown = {rater: clipped[rater] for rater in kept}
        shown["…"] = f"{len(clipped) - len(kept)} more raters"
        text = dumps(shown)
        if len(text) <= limits.TAG_VALUE_MAX:
            return text
    return text  # unreachable: {"…": "N more raters"} is short


def _clip(value: Any, width: int) -> Any:
    if isinstance(value, str):
        return value if len(value) <= width else value[:width] + "…"
    text = dumps(value)
    return value if len(text) <= width else text[:width] + "…"
