"""The fixtures of the issue 5 analytics workloads, on top of the seeded SearchTraces experiment.

* five application versions: the seeded traces (30 days) are spread over five model ids, so
  "p95 latency per model per day" has 5 × 30 groups over 100,000 traces;
* two evaluation runs created through the API (CreateRun), a baseline and a candidate, each
  linked to 10,000 of the seeded traces with a dataset record id per trace (record ``i`` of the
  baseline pairs with record ``i`` of the candidate) and scored by three feedback names per
  trace: ``correctness`` (a number in [0, 1)), ``relevance`` (a number), ``safe`` (a boolean).
  Links and assessments go straight into the tables (``store.query.bulk.BulkWrite``).
"""

from __future__ import annotations

import random
import time
from collections.abc import Sequence
from typing import Any

import grpc
import sqlalchemy as sa

from mlgenai.v1 import evaluation_run_service_pb2 as rpb, evaluation_run_service_pb2_grpc
from store.orm.base import table
from store.orm.runs import TraceRunLinkRow
from store.orm.traces import AssessmentRow, TraceRow
from store.query.bulk import BulkWrite
from store.uow import Database, UnitOfWork

MODELS = tuple(f"m-{i:032x}" for i in range(1, 6))
RUN_TRACES = 10_000
FEEDBACK_NAMES = ("correctness", "relevance", "safe")
_LINKS = BulkWrite(table(TraceRunLinkRow), ("run_id", "trace_id", "dataset_record_id", "create_time"))
_ASSESSMENTS = BulkWrite(
    table(AssessmentRow),
    (
        "assessment_id", "trace_id", "name", "kind", "source_type", "source_id", "value", "value_number",
        "value_bool", "metadata", "run_id", "valid", "create_time", "update_time",
    ),
)  # fmt: skip
_T = table(TraceRow)


def _create_run(target: str, experiment_id: str, name: str) -> str:
    with grpc.insecure_channel(target) as channel:
        stub = evaluation_run_service_pb2_grpc.EvaluationRunServiceStub(channel)
        return stub.CreateRun(rpb.CreateRunRequest(experiment_id=experiment_id, name=name), timeout=30).run_id


def _assign_models(uow: UnitOfWork, experiment_id: int) -> None:
    """Spread the experiment's traces over MODELS by the first hex digit of their id."""
    digits = "0123456789abcdef"
    for i, model in enumerate(MODELS):
        mine = [d for j, d in enumerate(digits) if j % len(MODELS) == i]
        uow.conn.execute(
            sa.update(_T)
            .where(_T.c.experiment_id == experiment_id, sa.func.substr(_T.c.trace_id, 4, 1).in_(mine))
            .values(model_id=model)
        )


def _scores(uow: UnitOfWork, rng: random.Random, run_id: str, trace_ids: Sequence[str], now: int) -> None:
    links: list[tuple[Any, ...]] = []
    rows: list[tuple[Any, ...]] = []
    for i, trace_id in enumerate(trace_ids):
        links.append((run_id, trace_id, f"dr-{i:032x}", now))
        for name in FEEDBACK_NAMES:
            if name == "safe":
                value: Any = rng.random() < 0.9
                number, boolean = None, value
            else:
                value = round(rng.random(), 3)
                number, boolean = value, None
            rows.append(
                (f"a-{rng.getrandbits(128):032x}", trace_id, name, "feedback", "LLM_JUDGE", "judge",
                 "true" if value is True else "false" if value is False else repr(value), number, boolean, "{}",
                 run_id, True, now, now)
            )  # fmt: skip
    _LINKS.run(uow, links)
    _ASSESSMENTS.run(uow, rows)


def prepare_analytics(url: str, target: str, experiment_id: str, trace_ids: Sequence[str]) -> tuple[str, str, float]:
    """Models and two scored runs over ``trace_ids`` (the seeded traces, at least 2 × RUN_TRACES).
    Returns (baseline run id, candidate run id, seconds)."""
    started = time.perf_counter()
    baseline = _create_run(target, experiment_id, "bench-baseline")
    candidate = _create_run(target, experiment_id, "bench-candidate")
    now = int(time.time() * 1000)
    db = Database(url, pool_size=1)
    try:
        db.write(lambda uow: _assign_models(uow, int(experiment_id)))
        n = min(RUN_TRACES, len(trace_ids) // 2)  # fewer with --quick
        db.write(lambda uow: _scores(uow, random.Random(1), baseline, trace_ids[:n], now))
        db.write(lambda uow: _scores(uow, random.Random(2), candidate, trace_ids[n : 2 * n], now))
        if db.dialect == "postgresql":
            with db.engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "ANALYZE traces, assessments, trace_run_links"
                )
    finally:
        db.dispose()
    return baseline, candidate, time.perf_counter() - started
