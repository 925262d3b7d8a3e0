"""AnalyticsService.GetRunResults and CompareRuns (SPEC §7)."""

from __future__ import annotations

import grpc

from mlgenai.v1 import analytics_service_pb2 as pb
from server.convert.ids import check_run_id
from server.validation import Violations
from store import limits
from store.query.keyset import page_size_of
from store.repositories.run_result_cache import NAMES, PAIRS, ensure_current
from store.repositories.run_results import AssessmentComparison, AssessmentSummary
from store.uow import Database

Ctx = grpc.ServicerContext


class RunResultsMethods:
    db: Database

    def GetRunResults(self, request: pb.GetRunResultsRequest, context: Ctx) -> pb.GetRunResultsResponse:
        checks = Violations()
        check_run_id(checks, "run_id", request.run_id)
        checks.raise_if_any()
        ensure_current(self.db, NAMES, [request.run_id])
        results = self.db.read(lambda uow: uow.run_results.results(request.run_id))
        return pb.GetRunResultsResponse(
            run_id=results.run_id,
            trace_count=results.trace_count,
            assessments=[_summary(s) for s in results.assessments],
        )

    def CompareRuns(self, request: pb.CompareRunsRequest, context: Ctx) -> pb.CompareRunsResponse:
        checks = Violations()
        check_run_id(checks, "baseline_run_id", request.baseline_run_id)
        candidates = list(request.candidate_run_ids)
        if not candidates:
            checks.add("candidate_run_ids", "required: at least one candidate run")
        elif len(candidates) > limits.COMPARE_CANDIDATES_MAX:
            checks.add("candidate_run_ids", f"at most {limits.COMPARE_CANDIDATES_MAX} runs (got {len(candidates)})")
        for i, run_id in enumerate(candidates):
            check_run_id(checks, f"candidate_run_ids[{i}]", run_id)
        if len(set(candidates)) != len(candidates):
            checks.add("candidate_run_ids", "candidate runs must be distinct")
        if request.baseline_run_id in candidates:
            checks.add("candidate_run_ids", "the baseline run cannot also be a candidate")
        names = list(request.assessment_names)
        for i, name in enumerate(names):
            checks.text(f"assessment_names[{i}]", name, max_len=limits.TAG_KEY_MAX, required=True)
        checks.raise_if_any()
        page_size = page_size_of(request.page_size)
        ensure_current(self.db, PAIRS, [request.baseline_run_id, *candidates])
        result = self.db.read(
            lambda uow: uow.run_results.compare(
                request.baseline_run_id, candidates, names, page_size, request.page_token
            )
        )
        return pb.CompareRunsResponse(
            comparisons=[
                pb.RunComparison(candidate_run_id=run_id, assessments=[_comparison(a) for a in items])
                for run_id, items in result.summaries.items()
            ],
            changed_pairs=[
                pb.ChangedPair(
                    candidate_run_id=c.candidate_run_id,
                    name=c.name,
                    pair_key=c.pair_key,
                    baseline_trace_id=c.baseline_trace_id,
                    candidate_trace_id=c.candidate_trace_id,
                    baseline_value=c.baseline_value,
                    candidate_value=c.candidate_value,
                )
                for c in result.changed
            ],
            next_page_token=result.next_page_token,
        )


def _summary(s: AssessmentSummary) -> pb.AssessmentSummary:
    return pb.AssessmentSummary(
        name=s.name,
        count=s.count,
        numeric_count=s.numeric_count,
        mean=s.mean,
        min=s.min,
        max=s.max,
        p50=s.p50,
        p90=s.p90,
        pass_rate=s.pass_rate,
        error_count=s.error_count,
    )


def _comparison(a: AssessmentComparison) -> pb.AssessmentComparison:
    return pb.AssessmentComparison(
        name=a.name,
        paired_count=a.paired_count,
        baseline_mean=a.baseline_mean,
        candidate_mean=a.candidate_mean,
        mean_difference=a.mean_difference,
        wins=a.wins,
        losses=a.losses,
        ties=a.ties,
        baseline_only=a.baseline_only,
        candidate_only=a.candidate_only,
    )
