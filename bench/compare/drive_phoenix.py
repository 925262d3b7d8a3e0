"""Arize Phoenix's side of ``make bench-compare``, run inside Phoenix's own virtual environment:
``python -m bench.compare.drive_phoenix --base-url URL --grpc HOST:PORT --dsn DSN --workload JSON``.

Spans go in over OTLP/gRPC (the same serialized requests our server gets, ``payload.py``); the
rest goes through Phoenix's official client (``phoenix.client.Client``): projects stand for
experiments, ``spans.get_spans`` for the search, span annotations for feedback, datasets and
examples for records. What was stored is counted with SQL in Phoenix's own database: Phoenix
acknowledges an OTLP export before the spans are written (it queues them in memory), so its
stored rate is rows over the time until the last row arrived. Prints one ``RESULT`` line.
"""

from __future__ import annotations

import argparse
import threading
import time
import uuid
from typing import Any

from bench.compare.common import StoredCounter, Workload, dataset_figures, emit, p50_ms, run_callers, timed
from bench.compare.payload import otlp_requests, records

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
Result = dict[str, Any]


class Driver:
    def __init__(self, base_url: str, grpc_target: str, dsn: str, w: Workload) -> None:
        from phoenix.client import Client

        self.base_url = base_url
        self.client = Client(base_url=base_url)
        self.grpc_target = grpc_target
        self.dsn = dsn
        self.w = w
        self.nonce = uuid.uuid4().hex[:8]
        self.project = f"cmp-ingest-{self.nonce}"
        self.span_ids: list[str] = []

    def experiments(self) -> Result:
        names = [f"cmp-{self.nonce}-{i}" for i in range(self.w.experiments)]
        elapsed = timed(lambda: [self.client.projects.create(name=n) for n in names])
        stored = StoredCounter(self.dsn, "select count(*) from projects where name like %s", [f"cmp-{self.nonce}-%"])
        return {"experiments_per_s": self.w.experiments / elapsed, "experiments_stored": stored()}

    def ingest(self) -> Result:
        import grpc

        w = self.w
        requests = otlp_requests(
            w.ingest_traces, w.spans_per_trace, w.traces_per_request, {"openinference.project.name": self.project}
        )
        counter = StoredCounter(
            self.dsn,
            "select count(*) from spans s join traces t on t.id = s.trace_rowid"
            " join projects p on p.id = t.project_rowid where p.name = %s",
            [self.project],
        )
        local = threading.local()

        def export(_caller: int, body: bytes) -> None:
            if not hasattr(local, "call"):
                channel = grpc.insecure_channel(self.grpc_target)
                grpc.channel_ready_future(channel).result(timeout=60)
                local.call = channel.unary_unary(EXPORT)
            local.call(body, timeout=60)

        t0 = time.perf_counter()
        acked_s = run_callers(w.ingest_callers, requests, export)
        expected = w.ingest_traces * w.spans_per_trace
        stored, stored_s = counter.until_settled(t0, expected, w.settle_s)
        return {
            "ingest_spans_sent": expected,
            "ingest_spans_stored": stored,
            "ingest_acknowledged_spans_per_s": expected / acked_s,
            "ingest_stored_spans_per_s": stored / stored_s if stored_s > 0 else 0.0,
        }

    def search(self) -> Result:
        def once() -> None:
            spans = self.client.spans.get_spans(project_identifier=self.project, limit=100)
            if len(spans) != 100:
                raise RuntimeError(f"get_spans returned {len(spans)} spans, not 100")
            self.span_ids = [s["context"]["span_id"] for s in spans]

        for _ in range(3):
            once()
        return {"search_p50_ms": p50_ms([timed(once) for _ in range(self.w.search_queries)])}

    def feedback(self) -> Result:
        from phoenix.client import Client

        clients = [Client(base_url=self.base_url) for _ in range(self.w.feedback_callers)]
        jobs = [(i, self.span_ids[i % len(self.span_ids)]) for i in range(self.w.feedback)]

        def annotate(caller: int, job: tuple[int, str]) -> None:
            clients[caller].spans.add_span_annotation(
                span_id=job[1],
                annotation_name="quality",
                score=0.5,
                annotator_kind="HUMAN",
                identifier=f"{self.nonce}-{job[0]}",  # a new annotation each time, not an upsert
                sync=True,
            )

        elapsed = run_callers(self.w.feedback_callers, jobs, annotate)
        stored = StoredCounter(
            self.dsn, "select count(*) from span_annotations where identifier like %s", [f"{self.nonce}-%"]
        )
        return {"feedback_per_s": self.w.feedback / elapsed, "feedback_stored": stored()}

    def datasets(self) -> Result:
        rows = records(self.w.records)
        name = f"cmp-{self.nonce}"
        step = self.w.records_per_call

        def upload() -> None:
            for i in range(0, len(rows), step):
                batch = rows[i : i + step]
                columns = {
                    "inputs": [r["inputs"] for r in batch],
                    "outputs": [r["outputs"] for r in batch],
                    "metadata": [r["expectations"] for r in batch],
                }
                if i == 0:
                    self.client.datasets.create_dataset(name=name, **columns)
                else:
                    self.client.datasets.add_examples_to_dataset(dataset=name, **columns)

        elapsed = timed(upload)
        stored = StoredCounter(
            self.dsn,
            "select count(*) from dataset_examples e join datasets d on d.id = e.dataset_id where d.name = %s",
            [name],
        )
        return dataset_figures(
            self.w, elapsed, stored(), lambda: len(self.client.datasets.get_dataset(dataset=name).examples)
        )


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--base-url", required=True)
    p.add_argument("--grpc", required=True)
    p.add_argument("--dsn", required=True)
    p.add_argument("--workload", required=True)
    a = p.parse_args()
    from phoenix import __version__

    d = Driver(a.base_url, a.grpc, a.dsn, Workload.from_json(a.workload))
    out: Result = {"version": __version__}
    out |= d.experiments()
    out |= d.ingest()
    out |= d.search()
    out |= d.feedback()
    out |= d.datasets()
    emit(out)


if __name__ == "__main__":
    main()
