"""Evaluation helpers of :class:`mlgenai.client.Client`: log an evaluation run in a few lines,
read its results, compare runs.

>>> with client.evaluation(experiment_id, dataset_id=ds, model_id=model) as ev:
...     for record in client.iter_records(ds, version=ev.dataset_version):
...         answer = my_app(record["inputs"])
...         ev.log_row(record["inputs"], answer, record_id=record["dataset_record_id"],
...                    feedback={"correct": answer == record["expectations"]["answer"]})
>>> client.get_run_results(ev.run_id)["assessments"]
>>> print(format_comparison(client.compare_runs(baseline_run_id, [ev.run_id])))

Rows are buffered and written in batches (spans by LogSpans, links by LinkTracesToRun, scores
by BatchCreateAssessments); leaving the ``with`` block flushes them and finishes the run
(FINISHED, or FAILED when the block raised).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from types import TracebackType
from typing import Any

from mlgenai.client._assessments import assessment
from mlgenai.client._traces import new_trace_id, span, span_to_proto
from mlgenai.client.convert import to_dict
from mlgenai.v1 import (
    analytics_service_pb2 as apb,
    assessment_pb2,
    assessment_service_pb2 as aspb,
    evaluation_run_pb2 as rpb,
    evaluation_run_service_pb2 as rspb,
    trace_pb2,
    trace_service_pb2 as tpb,
)
from mlgenai.v1.analytics_service_pb2_grpc import AnalyticsServiceStub
from mlgenai.v1.assessment_service_pb2_grpc import AssessmentServiceStub
from mlgenai.v1.evaluation_run_service_pb2_grpc import EvaluationRunServiceStub
from mlgenai.v1.trace_service_pb2_grpc import TraceServiceStub

LINKS_PER_CALL = 100
ASSESSMENTS_PER_CALL = 1000
SPANS_PER_CALL = 1000
REQUEST_ID_TAG = "mlflow.eval.requestId"
MODEL_ID_METADATA = "mlflow.modelId"


class Evaluation:
    """One evaluation run being logged; made by :meth:`EvaluationMixin.evaluation`."""

    def __init__(self, client: EvaluationMixin, run: rpb.EvaluationRun, source_id: str) -> None:
        self._client = client
        self.run = run
        self.run_id = run.run_id
        self.experiment_id = run.experiment_id
        self.dataset_version = run.dataset.dataset_version if run.HasField("dataset") else None
        self._source_id = source_id
        self._spans: list[Any] = []
        self._links: dict[str, str] = {}
        self._assessments: list[assessment_pb2.Assessment] = []

    def log_row(
        self,
        inputs: Any,
        outputs: Any,
        *,
        record_id: str = "",
        request_id: str = "",
        feedback: Mapping[str, Any] | None = None,
        name: str = "predict",
        trace_id: str = "",
    ) -> str:
        """Record one evaluated row as a one-span trace with its scores; returns the trace id.
        The trace carries the run's model (metadata ``mlflow.modelId``) when the run has one.

        ``record_id`` (a dataset record) or ``request_id`` (tag ``mlflow.eval.requestId``)
        lets CompareRuns pair this row with the same row of another run.
        """
        trace_id = trace_id or new_trace_id()
        now = time.time_ns()
        root = span(trace_id, name, span_type="CHAIN", start_time_unix_nano=now, inputs=inputs, outputs=outputs)
        self._spans.append(span_to_proto(root))
        if request_id or self.run.model_id:  # what only StartTrace can set: tags, metadata
            info = trace_pb2.TraceInfo(trace_id=trace_id, experiment_id=self.experiment_id)
            if request_id:
                info.tags[REQUEST_ID_TAG] = request_id
            if self.run.model_id:
                info.trace_metadata[MODEL_ID_METADATA] = self.run.model_id
            self._client.traces.StartTrace(tpb.StartTraceRequest(trace_info=info))
        self.link(trace_id, record_id=record_id)
        for key, value in (feedback or {}).items():
            self.log_feedback(trace_id, key, value, span_id=root["span_id"])
        if len(self._spans) >= SPANS_PER_CALL:
            self._flush_spans()
        return trace_id

    def link(self, trace_id: str, *, record_id: str = "") -> None:
        """Link an existing trace (written by the application itself) to the run."""
        self._links[trace_id] = record_id
        if len(self._links) >= LINKS_PER_CALL and not self._spans:
            self._flush_links()

    def log_feedback(
        self,
        trace_id: str,
        name: str,
        value: Any,
        *,
        source_type: str = "CODE",
        source_id: str = "",
        rationale: str = "",
        span_id: str = "",
    ) -> None:
        """Score a trace for this run (``value`` may be a number, a boolean, "yes"/"no", …)."""
        self._assessments.append(
            assessment(
                trace_id,
                name,
                value,
                source_type=source_type,
                source_id=source_id or self._source_id,
                rationale=rationale,
                span_id=span_id,
                run_id=self.run_id,
            )
        )
        if len(self._assessments) >= ASSESSMENTS_PER_CALL:
            self.flush()

    def flush(self) -> None:
        """Write everything buffered: spans first, then links, then scores."""
        self._flush_spans()
        self._flush_links()
        while self._assessments:
            batch, self._assessments = (
                self._assessments[:ASSESSMENTS_PER_CALL],
                self._assessments[ASSESSMENTS_PER_CALL:],
            )
            self._client.assessments.BatchCreateAssessments(aspb.BatchCreateAssessmentsRequest(assessments=batch))

    def finish(self, status: str = "FINISHED") -> dict[str, Any]:
        """Flush, then set the run's final status; returns the run."""
        self.flush()
        return self._client.finish_run(self.run_id, status)

    def _flush_spans(self) -> None:
        if self._spans:
            request = tpb.LogSpansRequest(experiment_id=self.experiment_id, spans=self._spans)
            self._client.traces.LogSpans(request)
            self._spans = []

    def _flush_links(self) -> None:
        items = list(self._links.items())
        self._links = {}
        for start in range(0, len(items), LINKS_PER_CALL):
            chunk = items[start : start + LINKS_PER_CALL]
            request = tpb.LinkTracesToRunRequest(
                run_id=self.run_id,
                trace_ids=[t for t, _ in chunk],
                dataset_record_ids={t: r for t, r in chunk if r},
            )
            self._client.traces.LinkTracesToRun(request)

    def __enter__(self) -> Evaluation:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if exc_type is None:
            self.finish("FINISHED")
        else:
            self.finish("FAILED")


class EvaluationMixin:
    traces: TraceServiceStub
    assessments: AssessmentServiceStub
    runs: EvaluationRunServiceStub
    analytics: AnalyticsServiceStub
    finish_run: Callable[..., dict[str, Any]]  # RunsMixin

    def evaluation(
        self,
        experiment_id: str,
        *,
        name: str = "",
        dataset_id: str = "",
        dataset_version: int = 0,
        model_id: str = "",
        params: Mapping[str, str] | None = None,
        tags: Mapping[str, str] | None = None,
        source_id: str = "",
    ) -> Evaluation:
        """Create a run (pinned to the dataset's current version unless ``dataset_version``)
        and return an :class:`Evaluation` to log rows into; use it as a context manager."""
        request = rspb.CreateRunRequest(
            experiment_id=experiment_id,
            name=name,
            model_id=model_id,
            params=dict(params or {}),
            tags=dict(tags or {}),
        )
        if dataset_id:
            request.dataset.CopyFrom(rpb.RunDataset(dataset_id=dataset_id, dataset_version=dataset_version))
        return Evaluation(self, self.runs.CreateRun(request), source_id)

    def get_run_results(self, run_id: str) -> dict[str, Any]:
        """Per assessment name: count, mean, min, max, p50, p90, pass rate, errors."""
        return to_dict(self.analytics.GetRunResults(apb.GetRunResultsRequest(run_id=run_id)))

    def compare_runs(
        self, baseline_run_id: str, candidate_run_ids: Sequence[str], *, assessment_names: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The comparison summaries and every changed pair (all pages)."""
        changed: list[dict[str, Any]] = []
        first: dict[str, Any] | None = None
        for page in self._comparison_pages(baseline_run_id, candidate_run_ids, assessment_names):
            if first is None:
                first = to_dict(page)
            changed.extend(to_dict(p) for p in page.changed_pairs)
        assert first is not None
        return {"comparisons": first.get("comparisons", []), "changed_pairs": changed}

    def _comparison_pages(
        self, baseline: str, candidates: Sequence[str], names: Sequence[str]
    ) -> Iterator[apb.CompareRunsResponse]:
        token = ""
        while True:
            request = apb.CompareRunsRequest(
                baseline_run_id=baseline,
                candidate_run_ids=list(candidates),
                assessment_names=list(names),
                page_size=1000,
                page_token=token,
            )
            page = self.analytics.CompareRuns(request)
            yield page
            token = page.next_page_token
            if not token:
                return


def format_comparison(comparison: Mapping[str, Any]) -> str:
    """A plain-text table of :meth:`EvaluationMixin.compare_runs`' summaries."""
    header = ("candidate", "assessment", "pairs", "baseline", "candidate", "diff", "wins", "losses", "ties")
    rows = [header]
    for item in comparison.get("comparisons", []):
        for a in item.get("assessments", []):
            rows.append(
                (
                    item["candidate_run_id"][:8],
                    a["name"],
                    str(a.get("paired_count", 0)),
                    _number(a.get("baseline_mean")),
                    _number(a.get("candidate_mean")),
                    _number(a.get("mean_difference"), signed=True),
                    str(a.get("wins", 0)),
                    str(a.get("losses", 0)),
                    str(a.get("ties", 0)),
                )
            )
    widths = [max(len(r[i]) for r in rows) for i in range(len(header))]
    lines = [
        "  ".join(cell.ljust(w) if i < 2 else cell.rjust(w) for i, (cell, w) in enumerate(zip(r, widths, strict=True)))
        for r in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(line.rstrip() for line in lines)


def _number(value: Any, *, signed: bool = False) -> str:
    if value is None:
        return "-"
    return f"{value:+.3f}" if signed else f"{value:.3f}"
