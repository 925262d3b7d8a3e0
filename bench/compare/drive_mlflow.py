"""MLflow's side of ``make bench-compare``, run inside MLflow's own virtual environment:
``python -m bench.compare.drive_mlflow --tracking-uri URL --dsn DSN --workload JSON``.

Every figure goes through MLflow's official Python client (``mlflow``, ``MlflowClient``), and
what was stored is counted with SQL in MLflow's own database. Prints one ``RESULT`` line.

Trace ingestion uses the SDK's asynchronous exporter with a queue large enough to hold the
whole run (``MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE``): the configuration in which MLflow
stores the most spans per second without dropping any (its synchronous exporter stored ~40-55
spans/s here, from 1 or 8 threads). The ``burst`` phase runs the default exporter instead and
reports how much of a 1,000-trace burst it kept.
"""

from __future__ import annotations

import argparse
import os
import random
import time
import uuid
from typing import Any

from bench.compare.common import StoredCounter, Workload, dataset_figures, emit, p50_ms, run_callers, timed
from bench.compare.payload import records, span_attributes

BURST_TRACES = 1000
Result = dict[str, Any]


class Driver:
    def __init__(self, tracking_uri: str, dsn: str, w: Workload) -> None:
        import mlflow

        mlflow.set_tracking_uri(tracking_uri)
        self.mlflow = mlflow
        self.client = mlflow.MlflowClient()
        self.dsn = dsn
        self.w = w
        self.nonce = uuid.uuid4().hex[:8]
        self.experiment_id = ""
        self.trace_ids: list[str] = []

    def experiments(self) -> Result:
        names = [f"cmp-{self.nonce}-{i}" for i in range(self.w.experiments)]
        elapsed = timed(lambda: [self.client.create_experiment(n) for n in names])
        stored = StoredCounter(self.dsn, "select count(*) from experiments where name like %s", [f"cmp-{self.nonce}-%"])
        return {"experiments_per_s": self.w.experiments / elapsed, "experiments_stored": stored()}

    def _log_traces(self, count: int) -> None:
        rng = random.Random(3)
        for _ in range(count):
            with self.mlflow.start_span("agent") as root:
                attrs = span_attributes(0, rng)
                root.set_inputs({"question": attrs["input.value"]})
                for i in range(1, self.w.spans_per_trace):
                    with self.mlflow.start_span("llm" if i % 2 else "retrieve") as child:
                        child.set_attributes(span_attributes(i, rng))
                root.set_outputs({"answer": attrs["output.value"]})

    def ingest(self, key: str, count: int) -> Result:
        self.experiment_id = self.mlflow.set_experiment(f"cmp-{key}-{self.nonce}").experiment_id
        counter = StoredCounter(
            self.dsn, "select count(*) from spans where experiment_id = %s", [int(self.experiment_id)]
        )
        t0 = time.perf_counter()
        self._log_traces(count)
        acked_s = time.perf_counter() - t0
        expected = count * self.w.spans_per_trace
        stored, stored_s = counter.until_settled(t0, expected, self.w.settle_s)
        return {
            f"{key}_spans_sent": expected,
            f"{key}_spans_stored": stored,
            f"{key}_acknowledged_spans_per_s": expected / acked_s,
            f"{key}_stored_spans_per_s": stored / stored_s if stored_s > 0 else 0.0,
        }

    def search(self) -> Result:
        def once() -> None:
            page = self.client.search_traces(
                experiment_ids=[self.experiment_id],
                filter_string="trace.status = 'OK'",
                max_results=100,
                include_spans=False,
            )
            if len(page) != 100:
                raise RuntimeError(f"search_traces returned {len(page)} traces, not 100")
            self.trace_ids = [t.info.trace_id for t in page]

        for _ in range(3):
            once()
        corpus = StoredCounter(
            self.dsn, "select count(*) from trace_info where experiment_id = %s", [int(self.experiment_id)]
        )
        return {
            "search_p50_ms": p50_ms([timed(once) for _ in range(self.w.search_queries)]),
            "search_corpus_traces": corpus(),
        }

    def feedback(self) -> Result:
        from mlflow.entities import AssessmentSource

        source = AssessmentSource(source_type="HUMAN", source_id="bench")
        jobs = [self.trace_ids[i % len(self.trace_ids)] for i in range(self.w.feedback)]

        def log(_caller: int, trace_id: str) -> None:
            self.mlflow.log_feedback(trace_id=trace_id, name="quality", value=0.5, source=source)

        elapsed = run_callers(self.w.feedback_callers, jobs, log)
        stored = StoredCounter(
            self.dsn,
            "select count(*) from assessments a join trace_info t on t.request_id = a.trace_id"
            " where t.experiment_id = %s and a.name = 'quality'",
            [int(self.experiment_id)],
        )
        return {"feedback_per_s": self.w.feedback / elapsed, "feedback_stored": stored()}

    def datasets(self) -> Result:
        from mlflow.genai.datasets import create_dataset, get_dataset

        ds = create_dataset(name=f"cmp-{self.nonce}", experiment_id=[self.experiment_id])
        rows = records(self.w.records)
        step = self.w.records_per_call
        elapsed = timed(lambda: [ds.merge_records(rows[i : i + step]) for i in range(0, len(rows), step)])
        stored = StoredCounter(
            self.dsn, "select count(*) from evaluation_dataset_records where dataset_id = %s", [ds.dataset_id]
        )
        return dataset_figures(self.w, elapsed, stored(), lambda: len(get_dataset(dataset_id=ds.dataset_id).to_df()))


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--tracking-uri", required=True)
    p.add_argument("--dsn", required=True, help="MLflow's database, for counting what it stored")
    p.add_argument("--workload", required=True)
    p.add_argument("--burst", action="store_true", help="only the default exporter's burst")
    a = p.parse_args()
    w = Workload.from_json(a.workload)
    os.environ["MLFLOW_ENABLE_ASYNC_TRACE_LOGGING"] = "true"
    if not a.burst:  # read when the exporter starts, so before the first span
        os.environ["MLFLOW_ASYNC_TRACE_LOGGING_MAX_QUEUE_SIZE"] = str(10 * w.ingest_traces * w.spans_per_trace)
    d = Driver(a.tracking_uri, a.dsn, w)
    if a.burst:
        emit(d.ingest("burst", BURST_TRACES))
        return
    out: Result = {"version": d.mlflow.__version__}
    out |= d.experiments()
    out |= d.ingest("ingest", w.ingest_traces)
    out |= d.search()
    out |= d.feedback()
    out |= d.datasets()
    emit(out)


if __name__ == "__main__":
    main()
