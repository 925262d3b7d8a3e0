"""Feedback and expectation helpers of :class:`mlgenai.client.Client` (dicts in, dicts out)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from mlgenai.client.convert import to_dict, to_value
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import assessment_pb2, assessment_service_pb2 as pb
from mlgenai.v1.assessment_service_pb2_grpc import AssessmentServiceStub

_SOURCES = {
    "HUMAN": assessment_pb2.ASSESSMENT_SOURCE_TYPE_HUMAN,
    "LLM_JUDGE": assessment_pb2.ASSESSMENT_SOURCE_TYPE_LLM_JUDGE,
    "CODE": assessment_pb2.ASSESSMENT_SOURCE_TYPE_CODE,
}


def assessment(
    trace_id: str,
    name: str,
    value: Any = None,
    *,
    kind: str = "feedback",
    source_type: str = "CODE",
    source_id: str = "",
    rationale: str = "",
    metadata: Mapping[str, str] | None = None,
    span_id: str = "",
    run_id: str = "",
    overrides: str = "",
    error: Mapping[str, str] | None = None,
) -> assessment_pb2.Assessment:
    """An Assessment message. ``kind`` is "feedback" or "expectation"; ``error`` (feedback only)
    is ``{"error_code", "error_message", "stack_trace"}`` instead of a value."""
    msg = assessment_pb2.Assessment(
        trace_id=trace_id,
        name=name,
        source=assessment_pb2.AssessmentSource(source_type=_SOURCES[source_type], source_id=source_id),
        rationale=rationale,
        metadata=dict(metadata or {}),
        span_id=span_id,
        run_id=run_id,
        overrides=overrides,
    )
    if kind == "expectation":
        msg.expectation.value.CopyFrom(to_value(value))
    elif error is not None:
        msg.feedback.error.CopyFrom(assessment_pb2.AssessmentError(**error))
    else:
        msg.feedback.value.CopyFrom(to_value(value))
    return msg


class AssessmentsMixin:
    assessments: AssessmentServiceStub

    def log_feedback(self, trace_id: str, name: str, value: Any = None, **options: Any) -> dict[str, Any]:
        """Record feedback on a trace (see :func:`assessment` for the options); returns it."""
        request = pb.CreateAssessmentRequest(assessment=assessment(trace_id, name, value, **options))
        return to_dict(self.assessments.CreateAssessment(request))

    def log_expectation(
        self, trace_id: str, name: str, value: Any, *, source_type: str = "HUMAN", **options: Any
    ) -> dict[str, Any]:
        """Record ground truth for a trace; returns it."""
        msg = assessment(trace_id, name, value, kind="expectation", source_type=source_type, **options)
        return to_dict(self.assessments.CreateAssessment(pb.CreateAssessmentRequest(assessment=msg)))

    def log_assessments(self, items: Sequence[assessment_pb2.Assessment]) -> list[dict[str, Any]]:
        """Create many assessments (built with :func:`assessment`) in one transaction."""
        response = self.assessments.BatchCreateAssessments(pb.BatchCreateAssessmentsRequest(assessments=list(items)))
        return [to_dict(a) for a in response.assessments]

    def list_assessments(
        self, *, trace_id: str = "", run_id: str = "", experiment_id: str = "", filter: str = ""
    ) -> Iterator[dict[str, Any]]:
        """Assessments of a trace, a run or an experiment (exactly one), all pages."""
        request = pb.ListAssessmentsRequest(
            trace_id=trace_id, run_id=run_id, experiment_id=experiment_id, filter=filter
        )
        for item in iter_pages(self.assessments.ListAssessments, request, "assessments"):
            yield to_dict(item)

    def delete_assessment(self, assessment_id: str) -> None:
        self.assessments.DeleteAssessment(pb.DeleteAssessmentRequest(assessment_id=assessment_id))
