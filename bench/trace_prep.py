"""The fixtures of the issue 3 workloads, made once per backend pass on first use.

* ``ingest``: an empty experiment each for LogSpans and OTLP (their stored spans are counted
  after the run);
* ``search``: an experiment of ``search_traces`` traces seeded straight into the tables
  (``bench.trace_seed``), for SearchTraces;
* ``get10k``: one trace of 10,000 spans, ingested through LogSpans (one call; timed);
* ``assess``: 1,000 seeded traces that the assessment workloads judge;
* ``analytics``: the ``search`` experiment plus models and two scored runs (``bench.analytics_prep``).

Experiments are created through the API (CreateExperiment), like any client would.
"""

from __future__ import annotations

import secrets
import sys
import time
from collections.abc import Collection
from dataclasses import replace

import grpc

from bench.analytics_prep import prepare_analytics
from bench.databases import BenchDatabase
from bench.labeling_suite import SESSION_ITEMS, prepare_labeling
from bench.ops import Unary
from bench.trace_checks import call_once
from bench.trace_ops import TRACE_SERVICE
from bench.trace_seed import seed_traces
from bench.trace_suite import INGEST_TRACES, TRACES_PER_CALL, TraceContext, big_trace_batch
from bench.workload import Record
from mlgenai.v1 import experiment_service_pb2 as epb, experiment_service_pb2_grpc, trace_service_pb2 as tpb

ASSESSED_TRACES = 1_000
BIG_TRACE_CALLER = 0xFFFE


def _experiment(target: str, name: str) -> str:
    with grpc.insecure_channel(target) as channel:
        stub = experiment_service_pb2_grpc.ExperimentServiceStub(channel)
        return stub.CreateExperiment(epb.CreateExperimentRequest(name=name), timeout=30).experiment_id


def prepare(
    db: BenchDatabase, target: str, needs: Collection[str], search_traces: int, ingest_traces: int = INGEST_TRACES
) -> tuple[TraceContext, Record]:
    """Make the fixtures ``needs`` names; returns what they are called and how long they took."""
    run = secrets.token_hex(3)
    ctx = TraceContext(nonce=secrets.randbits(30), ingest_calls=max(1, ingest_traces // TRACES_PER_CALL))
    info: Record = {}

    def log(text: str) -> None:
        print(f"[{db.backend}] {text}", file=sys.stderr)

    if "ingest" in needs:
        ctx = replace(
            ctx,
            logspans_experiment=_experiment(target, f"bench-logspans-{run}"),
            otlp_experiment=_experiment(target, f"bench-otlp-{run}"),
        )
    if "search" in needs or "analytics" in needs or "labeling" in needs:
        experiment = _experiment(target, f"bench-search-traces-{run}")
        seeded, seconds = seed_traces(db.url, experiment, search_traces)
        ctx = replace(ctx, search_experiment=experiment)
        info.update(trace_seed_seconds=round(seconds, 2), seeded_traces=search_traces)
        log(f"seeded {search_traces:,} traces in {seconds:.1f} s")
        if "analytics" in needs:
            baseline, candidate, seconds = prepare_analytics(db.url, target, experiment, seeded)
            ctx = replace(ctx, baseline_run=baseline, candidate_run=candidate)
            info["analytics_prep_seconds"] = round(seconds, 2)
            log(f"two scored runs and five models in {seconds:.1f} s")
        if "labeling" in needs:
            started = time.perf_counter()
            session, schema = prepare_labeling(target, experiment, list(seeded))
            ctx = replace(ctx, labeling_session=session, labeling_schema=schema)
            info["labeling_prep_seconds"] = round(time.perf_counter() - started, 2)
            log(f"a labeling session of {SESSION_ITEMS:,} items in {info['labeling_prep_seconds']} s")
    if "get10k" in needs:
        batches = big_trace_batch(ctx, _experiment(target, f"bench-get-trace-{run}"))
        started = time.perf_counter()
        raw = call_once(target, Unary(TRACE_SERVICE + "LogSpans", batches), batches(BIG_TRACE_CALLER, 0))
        seconds = time.perf_counter() - started
        stored = tpb.LogSpansResponse.FromString(raw).span_count
        ctx = replace(ctx, big_trace_id=batches.trace_ids(BIG_TRACE_CALLER, 0)[0])
        info.update(big_trace_logspans_seconds=round(seconds, 2), big_trace_spans=stored)
        log(f"LogSpans of one trace of {stored:,} spans (one call) took {seconds:.2f} s")
    if "assess" in needs:
        experiment = _experiment(target, f"bench-assessed-{run}")
        ids, seconds = seed_traces(db.url, experiment, ASSESSED_TRACES, seed=11)
        ctx = replace(ctx, assess_trace_ids=tuple(ids))
        info["assessed_traces_seed_seconds"] = round(seconds, 2)
    return ctx, info
