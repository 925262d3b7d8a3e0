"""Seeding traces straight into the tables (``store/orm/traces.py``), and counting stored spans.

``seed_traces`` writes what SearchTraces reads for a realistic experiment: traces arriving over
30 days (``request_time`` increasing with jitter, ids random), an ``env`` tag (prod, staging,
dev), about half OK (45% ERROR, 5% IN_PROGRESS), one root span each (JSON payload and serialized
proto, as LogSpans stores them, see ``server/convert/spans.py``) and one valid ``correctness``
feedback with a numeric value in [0, 1). Rows go in with ``store.query.bulk.BulkWrite``: one
``INSERT … SELECT FROM unnest(…)`` per table and batch on PostgreSQL, ``executemany`` on SQLite.
"""

from __future__ import annotations

import json
import random
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import cache
from typing import Any

import sqlalchemy as sa

from mlgenai.v1 import span_pb2
from store.engine import make_engine
from store.orm.base import table
from store.orm.traces import AssessmentRow, SpanRow, TraceRow, TraceTagRow
from store.query.bulk import BulkWrite
from store.uow import Database, UnitOfWork

DAY_MS = 86_400_000
ENVS = ("prod", "staging", "dev")
FEEDBACK_NAME = "correctness"

_TRACES = BulkWrite(
    table(TraceRow),
    (
        "trace_id", "experiment_id", "request_time", "execution_duration", "state", "name", "request_preview",
        "response_preview", "user_id", "input_tokens", "output_tokens", "total_tokens", "span_count",
        "request_time_from_caller", "duration_from_caller", "state_from_caller", "create_time", "update_time",
    ),
)  # fmt: skip
_TAGS = BulkWrite(table(TraceTagRow), ("trace_id", "key", "value"))
_SPANS = BulkWrite(
    table(SpanRow),
    (
        "trace_id", "span_id", "parent_span_id", "name", "span_type", "status", "start_time_unix_nano",
        "end_time_unix_nano", "input_tokens", "output_tokens", "total_tokens", "payload", "proto",
    ),
)  # fmt: skip
_ASSESSMENTS = BulkWrite(
    table(AssessmentRow),
    (
        "assessment_id", "trace_id", "name", "kind", "source_type", "source_id", "value", "value_number",
        "rationale", "metadata", "valid", "create_time", "update_time",
    ),
)  # fmt: skip
_STATES, _STATE_WEIGHTS = ("OK", "ERROR", "IN_PROGRESS"), (50, 45, 5)
_SPAN_STATUS = {"OK": "OK", "ERROR": "ERROR", "IN_PROGRESS": "UNSET"}
_SPAN_STATUS_PROTO = {
    "OK": span_pb2.SPAN_STATUS_CODE_OK,
    "ERROR": span_pb2.SPAN_STATUS_CODE_ERROR,
    "UNSET": span_pb2.SPAN_STATUS_CODE_UNSPECIFIED,
}


@dataclass(frozen=True)
class _Content:
    """What varies little between seeded traces, prepared once (a pool of these is cycled)."""

    request_preview: str
    response_preview: str | None
    payload: str  # the root span's payload JSON
    proto_tail: bytes  # its inputs, outputs and attributes, serialized (appended to the per-row fields)
    used_in: int
    used_out: int


@cache
def _contents(state: str, variants: int = 997) -> list[_Content]:
    out = []
    for k in range(variants):
        question = f"Where is my order #{k * 7919 % 10**6:06d}?"
        answer = "It ships tomorrow." if state == "OK" else ""
        used_in, used_out = 300 + k * 37 % 700, 20 + k * 13 % 300
        attributes = {"mlflow.chat.tokenUsage": {"input_tokens": used_in, "output_tokens": used_out}}
        payload: dict[str, Any] = {
            "status_message": "",
            "inputs": {"question": question},
            "outputs": {"answer": answer},
        }
        tail = span_pb2.Span(name="support_agent", span_type="AGENT")
        tail.inputs.struct_value.update(payload["inputs"])
        tail.outputs.struct_value.update(payload["outputs"])
        tail.attributes.update(attributes)
        document = json.dumps(payload | {"attributes": attributes, "events": []}, separators=(",", ":"))
        response = json.dumps({"answer": answer}) if answer else None
        out.append(_Content(json.dumps({"question": question}), response, document, tail.SerializeToString(),
                            used_in, used_out))  # fmt: skip
    return out


class _Batch:
    """The rows of one batch of seeded traces, per table."""

    def __init__(self) -> None:
        self.traces: list[tuple[Any, ...]] = []
        self.tags: list[tuple[Any, ...]] = []
        self.spans: list[tuple[Any, ...]] = []
        self.assessments: list[tuple[Any, ...]] = []

    def write(self, uow: UnitOfWork) -> None:
        for write, rows in (
            (_TRACES, self.traces), (_TAGS, self.tags), (_SPANS, self.spans), (_ASSESSMENTS, self.assessments),
        ):  # fmt: skip
            write.run(uow, rows)

    def add(self, rng: random.Random, experiment_id: int, request_time: int, now: int) -> str:
        trace_id = f"tr-{rng.getrandbits(128):032x}"
        state = rng.choices(_STATES, _STATE_WEIGHTS)[0]
        c = rng.choice(_contents(state))
        duration = None if state == "IN_PROGRESS" else int(rng.lognormvariate(7.0, 0.8))  # ~1.1 s median
        total = c.used_in + c.used_out
        self.traces.append(
            (trace_id, experiment_id, request_time, duration, state, "support_agent", c.request_preview,
             c.response_preview, f"user-{rng.randrange(5000)}", c.used_in, c.used_out, total, 1,
             False, False, False, now, now)
        )  # fmt: skip
        self.tags.append((trace_id, "env", rng.choice(ENVS)))
        span_id, status = f"{rng.getrandbits(64):016x}", _SPAN_STATUS[state]
        start = request_time * 1_000_000
        end = start + duration * 1_000_000 if duration is not None else 0
        head = span_pb2.Span(
            trace_id=trace_id, span_id=span_id, start_time_unix_nano=start, end_time_unix_nano=end,
            status=span_pb2.SpanStatus(code=_SPAN_STATUS_PROTO[status]),
        )  # fmt: skip
        self.spans.append(
            (trace_id, span_id, None, "support_agent", "AGENT", status, start, end or None, c.used_in, c.used_out,
             total, c.payload, head.SerializeToString() + c.proto_tail)
        )  # fmt: skip
        value = round(rng.random(), 3)
        self.assessments.append(
            (f"a-{rng.getrandbits(128):032x}", trace_id, FEEDBACK_NAME, "feedback", "LLM_JUDGE", "judge-gpt-4o",
             repr(value), value, "Checked against the order database.", "{}", True, now, now)
        )  # fmt: skip
        return trace_id


def seed_traces(
    url: str, experiment_id: str, count: int, *, seed: int = 3, batch: int = 10_000, analyze: bool = True
) -> tuple[list[str], float]:
    """Insert ``count`` traces into ``experiment_id``; returns their ids (oldest first) and the seconds it took.

    Two threads each build and write whole batches on their own connection, so one builds rows
    in Python while PostgreSQL inserts the other's (about twice as fast as one on 2 cores).
    """
    started = time.perf_counter()
    now = int(time.time() * 1000)
    first, gap = now - 30 * DAY_MS, max(1, 30 * DAY_MS // max(count, 1))
    db = Database(url, pool_size=2)

    def one_batch(low: int) -> list[str]:
        rng, rows = random.Random(seed * 1_000_003 + low), _Batch()
        high = min(low + batch, count)
        ids = [rows.add(rng, int(experiment_id), first + i * gap + rng.randrange(gap), now) for i in range(low, high)]
        db.write(rows.write)
        return ids

    try:
        with ThreadPoolExecutor(2 if db.dialect == "postgresql" else 1) as pool:
            ids = [trace_id for part in pool.map(one_batch, range(0, count, batch)) for trace_id in part]
        if analyze and db.dialect == "postgresql":
            _autocommit(db, "ANALYZE")  # what autovacuum would do within a minute (as seed_experiments)
    finally:
        db.dispose()
    return ids, time.perf_counter() - started


def _autocommit(db: Database, sql: str) -> None:
    with db.engine.connect() as conn:
        conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(sql)


def count_spans(url: str, experiment_id: str) -> int:
    """Spans stored for the traces of ``experiment_id`` (rows of the spans table)."""
    spans, traces = table(SpanRow), table(TraceRow)
    stmt = (
        sa.select(sa.func.count())
        .select_from(spans.join(traces, spans.c.trace_id == traces.c.trace_id))
        .where(traces.c.experiment_id == int(experiment_id))
    )
    engine = make_engine(url, pool_size=1)
    try:
        with engine.connect() as conn:
            return int(conn.execute(stmt).scalar_one())
    finally:
        engine.dispose()
