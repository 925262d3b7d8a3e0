"""Our side of ``make bench-compare``: the same workloads as the peers' drivers, through the
generated client (``mlgenai.client``) against a server started on a fresh PostgreSQL database.

Calls go over 16 connections used in turn (``CONNECTIONS``). Spans go in over OTLP/gRPC as the
same serialized requests Phoenix receives. Our server acknowledges an export only after its
transaction committed, so the stored rate is also the acknowledged rate; the stored rows are
still counted with SQL, as for the peers.
"""

from __future__ import annotations

import uuid
from typing import Any

import grpc

from bench.compare.common import StoredCounter, Workload, dataset_figures, p50_ms, run_callers, timed
from bench.compare.payload import otlp_requests, records
from mlgenai.client import connect
from mlgenai.client.channel import PooledChannel
from mlgenai.v1 import trace_service_pb2 as tpb

EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
# Our server runs several worker processes on one port and the kernel gives each connection to
# one of them: the callers share this many connections, used in turn, so that every worker gets
# work (as the peers' HTTP clients spread their requests over a pool of connections).
CONNECTIONS = 16
SPANS_OF_EXPERIMENT = "select count(*) from spans s join traces t on t.trace_id = s.trace_id where t.experiment_id = %s"


def _ingest(target: str, experiment_id: str, w: Workload, traces: int, seed: int) -> float:
    """Export ``traces`` traces into the experiment from ``w.ingest_callers`` threads; seconds."""
    requests = otlp_requests(traces, w.spans_per_trace, w.traces_per_request, {"service.name": "bench"}, seed)
    channel = PooledChannel(
        [grpc.insecure_channel(target, options=[("grpc.use_local_subchannel_pool", 1)]) for _ in range(CONNECTIONS)]
    )
    try:
        call: grpc.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(EXPORT)
        metadata = (("x-mlflow-experiment-id", experiment_id),)
        return run_callers(w.ingest_callers, requests, lambda _c, body: call(body, metadata=metadata, timeout=60))
    finally:
        channel.close()


def run(target: str, dsn: str, w: Workload) -> dict[str, Any]:
    nonce = uuid.uuid4().hex[:8]
    out: dict[str, Any] = {}
    with connect(target, timeout=60, connections=CONNECTIONS) as client:
        names = [f"cmp-{nonce}-{i}" for i in range(w.experiments)]
        out["experiments_per_s"] = w.experiments / timed(lambda: [client.create_experiment(n) for n in names])
        out["experiments_stored"] = StoredCounter(
            dsn, "select count(*) from experiments where name like %s", [f"cmp-{nonce}-%"]
        )()

        ingest_exp = client.create_experiment(f"cmp-ingest-{nonce}")["experiment_id"]
        elapsed = _ingest(target, ingest_exp, w, w.ingest_traces, seed=7)
        sent = w.ingest_traces * w.spans_per_trace
        stored = StoredCounter(dsn, SPANS_OF_EXPERIMENT, [int(ingest_exp)])()
        out.update(
            ingest_spans_sent=sent,
            ingest_spans_stored=stored,
            ingest_acknowledged_spans_per_s=sent / elapsed,
            ingest_stored_spans_per_s=stored / elapsed,
        )

        search_exp = ingest_exp
        if w.search_corpus != w.ingest_traces:  # search an experiment of exactly the peers' size
            search_exp = client.create_experiment(f"cmp-search-{nonce}")["experiment_id"]
            _ingest(target, search_exp, w, w.search_corpus, seed=8)
        request = tpb.SearchTracesRequest(experiment_ids=[search_exp], filter="trace.status = 'OK'", page_size=100)
        trace_ids: list[str] = []

        def search() -> None:
            page = client.traces.SearchTraces(request)
            if len(page.traces) != 100:
                raise RuntimeError(f"SearchTraces returned {len(page.traces)} traces, not 100")
            trace_ids[:] = [t.trace_id for t in page.traces]

        for _ in range(3):
            search()
        out["search_p50_ms"] = p50_ms([timed(search) for _ in range(w.search_queries)])
        out["search_corpus_traces"] = StoredCounter(
            dsn, "select count(*) from traces where experiment_id = %s", [int(search_exp)]
        )()

        jobs = [trace_ids[i % len(trace_ids)] for i in range(w.feedback)]

        def log(_caller: int, trace_id: str) -> None:
            client.log_feedback(trace_id, "quality", 0.5, source_type="HUMAN", source_id="bench")

        elapsed = run_callers(w.feedback_callers, jobs, log)
        out["feedback_per_s"] = w.feedback / elapsed
        out["feedback_stored"] = StoredCounter(
            dsn,
            "select count(*) from assessments a join traces t on t.trace_id = a.trace_id"
            " where t.experiment_id = %s and a.name = 'quality'",
            [int(search_exp)],
        )()

        dataset_id = client.create_dataset(f"cmp-{nonce}", experiment_ids=[search_exp])["dataset_id"]
        rows = records(w.records)
        elapsed = timed(lambda: client.merge_records(dataset_id, rows, batch_size=w.records_per_call))
        current_records = StoredCounter(
            dsn,
            "select count(*) from evaluation_dataset_records where dataset_id = %s and valid_to is null",
            [dataset_id],
        )
        out |= dataset_figures(w, elapsed, current_records(), lambda: sum(1 for _ in client.iter_records(dataset_id)))
    return out
