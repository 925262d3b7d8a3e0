"""The workloads of issue 3: span ingestion (LogSpans, OTLP), SearchTraces, GetTrace, assessments.

They run on fixtures that ``bench.trace_prep.prepare`` makes on first use (after the issue 2
workloads, so those still see exactly their seeded experiments) and describes in a
``TraceContext``; ``trace_workloads(TraceContext())`` gives placeholders for ``--list`` and
``--only``. Groups: ``traces`` (LogSpans, SearchTraces, GetTrace), ``otlp``, ``assessments``.
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.ops import Fixed, Unary
from bench.trace_checks import GetTraceProbe, IngestProbe, SearchProbe
from bench.trace_ops import (
    ASSESSMENT_SERVICE,
    EXPERIMENT_HEADER,
    OTLP_EXPORT,
    TRACE_SERVICE,
    CreateAssessments,
    SpanBatches,
    batch_assessments_request,
)
from bench.workload import Workload
from mlgenai.v1 import trace_service_pb2 as tpb

INGEST_TRACES = 10_000  # traces per ingestion run: calls of TRACES_PER_CALL traces × SPANS_PER_TRACE spans
TRACES_PER_CALL = 100
SPANS_PER_TRACE = 10
INGEST_SWEEP = (1, 2, 4)  # concurrencies tried for ingestion; the fastest is reported
BIG_TRACE_SPANS = 10_000
BATCH_ASSESSMENTS = 1_000
SEARCHES = {  # workload: (filter, what its probe checks)
    "search_traces_tag_status": ("tags.env = 'prod' AND trace.status = 'OK'", "tag_status"),
    "search_traces_feedback": ("feedback.correctness > 0.5", "feedback"),
}
PLACEHOLDER_TRACE = "tr-" + "0" * 32


@dataclass(frozen=True)
class TraceContext:
    """What the prepared fixtures are called (placeholders until ``bench.trace_prep.prepare``)."""

    nonce: int = 0  # < 2**30: part of every trace id this backend pass ingests (with 2 bits per workload)
    ingest_calls: int = INGEST_TRACES // TRACES_PER_CALL
    logspans_experiment: str = "0"
    otlp_experiment: str = "0"
    search_experiment: str = "0"
    big_trace_id: str = PLACEHOLDER_TRACE
    assess_trace_ids: tuple[str, ...] = (PLACEHOLDER_TRACE,)
    baseline_run: str = "0" * 32  # the analytics runs (bench.analytics_prep)
    candidate_run: str = "1" * 32
    labeling_session: str = "lbs-" + "0" * 32  # the labeling session (bench.labeling_suite)
    labeling_schema: str = "ls-" + "0" * 32


def ingest_batches(ctx: TraceContext, otlp: bool) -> SpanBatches:
    experiment = ctx.otlp_experiment if otlp else ctx.logspans_experiment
    return SpanBatches(experiment, ctx.nonce * 4 + otlp, TRACES_PER_CALL, SPANS_PER_TRACE, otlp)


def big_trace_batch(ctx: TraceContext, experiment_id: str) -> SpanBatches:
    """One LogSpans call of one trace of ``BIG_TRACE_SPANS`` spans (the GetTrace fixture)."""
    return SpanBatches(experiment_id, ctx.nonce * 4 + 2, 1, BIG_TRACE_SPANS)


def trace_workloads(ctx: TraceContext, channels_16: int = 1) -> list[Workload]:
    """The issue 3 workloads on the fixtures ``ctx`` names; ``channels_16``: connections for 16 callers."""
    spans = TRACES_PER_CALL * SPANS_PER_TRACE
    note = f"{TRACES_PER_CALL} traces × {SPANS_PER_TRACE} spans of ~1 KB per call, {ctx.ingest_calls} calls"
    out = []
    for name, rpc, otlp, experiment in (
        ("logspans", "LogSpans", False, ctx.logspans_experiment),
        ("otlp", "OTLP Export", True, ctx.otlp_experiment),
    ):
        batches = ingest_batches(ctx, otlp)
        op = Unary(OTLP_EXPORT, batches, metadata=((EXPERIMENT_HEADER, experiment),)) if otlp else None
        op = op or Unary(TRACE_SERVICE + "LogSpans", batches)
        out.append(
            Workload(
                name,
                rpc,
                note,
                op,
                max(INGEST_SWEEP),
                group="otlp" if otlp else "traces",
                sweep=INGEST_SWEEP,
                calls=ctx.ingest_calls,
                per_call=spans,
                item="spans",
                prepare="ingest",
                probe=IngestProbe(op, batches),
                stored_in=experiment,
            )
        )
    for name, (text, check) in SEARCHES.items():
        req = tpb.SearchTracesRequest(experiment_ids=[ctx.search_experiment], filter=text, page_size=100)
        op = Unary(TRACE_SERVICE + "SearchTraces", Fixed(req.SerializeToString()))
        out.append(
            Workload(
                name,
                "SearchTraces",
                f"{text}, page 100",
                op,
                1,
                group="traces",
                prepare="search",
                probe=SearchProbe(op, req.SerializeToString(), check),
            )
        )
    req_bytes = tpb.GetTraceRequest(trace_id=ctx.big_trace_id).SerializeToString()
    get = Unary(TRACE_SERVICE + "GetTrace", Fixed(req_bytes))
    out.append(
        Workload(
            "get_trace_10k",
            "GetTrace",
            f"{BIG_TRACE_SPANS:,} spans",
            get,
            1,
            group="traces",
            min_duration_s=3.0,
            prepare="get10k",
            probe=GetTraceProbe(get, req_bytes, BIG_TRACE_SPANS),
        )
    )
    for rid in (True, False):
        name = "create_assessment_c16" if rid else "create_assessment_norid_c16"
        op = Unary(ASSESSMENT_SERVICE + "CreateAssessment", CreateAssessments(ctx.assess_trace_ids, request_id=rid))
        note = f"feedback, {'request_id' if rid else 'no request_id'}"
        out.append(Workload(name, "CreateAssessment", note, op, 16, channels_16, group="assessments", prepare="assess"))
    batch = Fixed(batch_assessments_request(ctx.assess_trace_ids, BATCH_ASSESSMENTS))
    out.append(
        Workload(
            "batch_assessments",
            "BatchCreateAssessments",
            f"{BATCH_ASSESSMENTS:,} feedbacks per call",
            Unary(ASSESSMENT_SERVICE + "BatchCreateAssessments", batch),
            2,
            group="assessments",
            per_call=BATCH_ASSESSMENTS,
            item="assessments",
            prepare="assess",
        )
    )
    return out
