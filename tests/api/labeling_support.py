"""Shared by the labeling session tests: schemas, traces, sessions, stored-state reads."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa

from mlgenai.client import Client
from mlgenai.v1 import label_schema_pb2 as spb, labeling_service_pb2 as pb
from store.uow import Database

LABELING_TABLES = (
    "labeling_sessions",
    "labeling_session_schemas",
    "labeling_items",
    "labeling_item_raters",
    "labeling_labels",
    "labeling_leases",
)
TABLES = (*LABELING_TABLES, "assessments")
MISSING_SESSION = "lbs-" + "0" * 32
MISSING_ITEM = "lsi-" + "0" * 32
MISSING_SCHEMA = "ls-" + "0" * 32


def make_schema(
    client: Client,
    experiment_id: str,
    name: str,
    *,
    kind: str = "pass_fail",
    expectation: bool = False,
    enable_comment: bool = False,
    **config: Any,
) -> str:
    """A label schema through CreateLabelSchema; its id."""
    schema = spb.LabelSchema(
        experiment_id=experiment_id,
        name=name,
        type=spb.LABEL_SCHEMA_TYPE_EXPECTATION if expectation else spb.LABEL_SCHEMA_TYPE_FEEDBACK,
        enable_comment=enable_comment,
    )
    if kind == "pass_fail":
        schema.pass_fail.CopyFrom(spb.PassFailInput(**config))
    elif kind == "categorical":
        schema.categorical.CopyFrom(spb.CategoricalInput(**config))
    elif kind == "numeric":
        schema.numeric.CopyFrom(spb.NumericInput(**config))
    else:
        schema.text.CopyFrom(spb.TextInput(**config))
    return str(client.labeling.CreateLabelSchema(pb.CreateLabelSchemaRequest(label_schema=schema)).schema_id)


def make_traces(client: Client, experiment_id: str, n: int) -> list[str]:
    return [str(client.start_trace(experiment_id)["trace_id"]) for _ in range(n)]


@dataclass
class Setup:
    """An experiment with two schemas (pass/fail feedback taking comments, numeric expectation)
    and some traces."""

    exp: str
    good: str  # pass/fail feedback "correct", comments enabled
    score: str  # numeric expectation "score", 0..10
    traces: list[str]

    @property
    def schemas(self) -> list[str]:
        return [self.good, self.score]

    def labels(self, good: bool = True, score: float = 5) -> dict[str, Any]:
        return {self.good: good, self.score: score}


def setup(client: Client, traces: int = 5, name: str = "labeling") -> Setup:
    exp = str(client.create_experiment(name)["experiment_id"])
    good = make_schema(client, exp, "correct", enable_comment=True)
    score = make_schema(client, exp, "score", kind="numeric", expectation=True, min_value=0, max_value=10)
    return Setup(exp, good, score, make_traces(client, exp, traces))


def make_session(client: Client, s: Setup, *, n: int = 1, add: int | None = None, **options: Any) -> dict[str, Any]:
    """A session over ``s``'s schemas with the first ``add`` traces (all by default) as items."""
    session = client.create_labeling_session(
        s.exp, options.pop("name", "review"), s.schemas, raters_per_item=n, **options
    )
    traces = s.traces if add is None else s.traces[:add]
    if traces:
        client.add_items(session["labeling_session_id"], trace_ids=traces)
    return session


def items(client: Client, session_id: str, **filters: Any) -> list[dict[str, Any]]:
    return list(client.list_items(session_id, **filters))


def expire_leases(db: Database, where: str = "", **params: Any) -> None:
    """Move leases into the past (instead of waiting for them to lapse)."""
    sql = "UPDATE labeling_leases SET expire_time = 1" + (f" WHERE {where}" if where else "")
    with db.engine.begin() as conn:
        conn.execute(sa.text(sql), params)


def rows(db: Database, sql: str, **params: Any) -> list[Any]:
    with db.engine.connect() as conn:
        return list(conn.execute(sa.text(sql), params).all())


def human_assessments(db: Database, trace_id: str, *, valid_only: bool = True) -> list[Any]:
    """The HUMAN assessments of a trace (name, source_id, value, rationale, valid, overrides, id), oldest first."""
    sql = (
        "SELECT name, source_id, value, rationale, valid, overrides, assessment_id, kind FROM assessments"
        " WHERE trace_id = :t AND source_type = 'HUMAN'"
    )
    if valid_only:
        sql += " AND valid"
    return rows(db, sql + " ORDER BY create_time, assessment_id", t=trace_id)


def rater_rows(db: Database, item_id: str) -> dict[str, str]:
    return {
        r.rater: r.status
        for r in rows(db, "SELECT rater, status FROM labeling_item_raters WHERE item_id = :i", i=item_id)
    }


def stored_item(db: Database, item_id: str) -> Any:
    found = rows(db, "SELECT * FROM labeling_items WHERE item_id = :i", i=item_id)
    return found[0] if found else None


def claim_and_submit(client: Client, session_id: str, rater: str, values: dict[str, Any]) -> dict[str, Any] | None:
    claim = client.claim_next_item(session_id, rater)
    if claim is None:
        return None
    return client.submit_labels(session_id, claim["item"]["item_id"], rater, values)


def item_ids(found: Sequence[dict[str, Any]]) -> list[str]:
    return [i["item_id"] for i in found]
