"""AssessmentService (SPEC §4)."""

from __future__ import annotations

import grpc

from mlgenai.v1 import assessment_pb2, assessment_service_pb2 as pb, assessment_service_pb2_grpc
from server.convert.assessments import (
    MUTABLE,
    OUTPUT_ONLY,
    check_assessment_id,
    to_changes,
    to_new,
    to_proto,
)
from server.convert.common import now_ms
from server.convert.ids import check_run_id
from server.convert.spans import check_trace_id
from server.field_masks import mask_paths
from server.idempotency import idempotent_write
from server.validation import Violations
from store import limits
from store.domain import SearchQuery
from store.query.keyset import page_size_of
from store.repositories.assessments import NewAssessment
from store.repositories.experiments import parse_experiment_id
from store.uow import Database, UnitOfWork

Ctx = grpc.ServicerContext
Assessment = assessment_pb2.Assessment


def _assessment_id(value: str, field: str = "assessment_id") -> None:
    checks = Violations()
    check_assessment_id(checks, field, value)
    checks.raise_if_any()


def _list_scope(request: pb.ListAssessmentsRequest) -> tuple[str, str]:
    """(field, id) of the one scope given: trace_id, run_id or experiment_id."""
    given = [(f, v) for f, v in (("trace_id", request.trace_id), ("run_id", request.run_id)) if v]
    if request.experiment_id:
        given.append(("experiment_id", request.experiment_id))
    checks = Violations()
    if len(given) != 1:
        for field in [f for f, _ in given] or ["trace_id"]:
            checks.add(field, "give exactly one of trace_id, run_id, experiment_id")
    elif given[0][0] == "trace_id":
        check_trace_id(checks, "trace_id", request.trace_id)
    elif given[0][0] == "run_id":
        check_run_id(checks, "run_id", request.run_id)
    else:
        parse_experiment_id(request.experiment_id)
    checks.text("filter", request.filter, max_len=limits.FILTER_MAX)
    checks.raise_if_any()
    return given[0]


class AssessmentServicer(assessment_service_pb2_grpc.AssessmentServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def CreateAssessment(self, request: pb.CreateAssessmentRequest, context: Ctx) -> Assessment:
        checks = Violations()
        item = to_new(request.assessment, checks, "assessment")
        checks.request_id(request.request_id)
        checks.raise_if_any()
        assert item is not None
        items = [item]

        def work(uow: UnitOfWork) -> Assessment:
            return to_proto(uow.assessments.create(items, now_ms(), ["assessment"])[0])

        return idempotent_write(self.db, "CreateAssessment", request, Assessment, work)

    def BatchCreateAssessments(
        self, request: pb.BatchCreateAssessmentsRequest, context: Ctx
    ) -> pb.BatchCreateAssessmentsResponse:
        checks = Violations()
        checks.request_id(request.request_id)
        count = len(request.assessments)
        if not 0 < count <= limits.ASSESSMENTS_PER_BATCH_MAX:
            checks.add("assessments", f"1 to {limits.ASSESSMENTS_PER_BATCH_MAX} assessments per call (got {count})")
            checks.raise_if_any()
        paths = [f"assessments[{i}]" for i in range(count)]
        found = [to_new(a, checks, path) for a, path in zip(request.assessments, paths, strict=True)]
        checks.raise_if_any()
        items: list[NewAssessment] = [i for i in found if i is not None]

        def work(uow: UnitOfWork) -> pb.BatchCreateAssessmentsResponse:
            created = uow.assessments.create(items, now_ms(), paths)
            return pb.BatchCreateAssessmentsResponse(assessments=[to_proto(a) for a in created])

        return idempotent_write(self.db, "BatchCreateAssessments", request, pb.BatchCreateAssessmentsResponse, work)

    def GetAssessment(self, request: pb.GetAssessmentRequest, context: Ctx) -> Assessment:
        _assessment_id(request.assessment_id)
        return to_proto(self.db.read(lambda uow: uow.assessments.get(request.assessment_id)))

    def UpdateAssessment(self, request: pb.UpdateAssessmentRequest, context: Ctx) -> Assessment:
        msg = request.assessment
        _assessment_id(msg.assessment_id, "assessment.assessment_id")
        paths = mask_paths(request.update_mask, msg, mutable=MUTABLE, output_only=OUTPUT_ONLY)
        checks = Violations()
        changes = to_changes(msg, paths, checks, masked=bool(request.update_mask.paths))
        checks.raise_if_any()
        if not paths and not changes.immutable:
            return to_proto(self.db.read(lambda uow: uow.assessments.get(msg.assessment_id)))
        return to_proto(self.db.write(lambda uow: uow.assessments.update(msg.assessment_id, changes, now_ms())))

    def DeleteAssessment(self, request: pb.DeleteAssessmentRequest, context: Ctx) -> pb.DeleteAssessmentResponse:
        _assessment_id(request.assessment_id)
        self.db.write(lambda uow: uow.assessments.delete(request.assessment_id, now_ms()))
        return pb.DeleteAssessmentResponse()

    def ListAssessments(self, request: pb.ListAssessmentsRequest, context: Ctx) -> pb.ListAssessmentsResponse:
        scope, scope_id = _list_scope(request)
        query = SearchQuery(
            filter=request.filter, page_size=page_size_of(request.page_size), page_token=request.page_token
        )
        page = self.db.read(lambda uow: uow.assessments.page(scope, scope_id, query))
        return pb.ListAssessmentsResponse(
            assessments=[to_proto(a) for a in page.items], next_page_token=page.next_page_token
        )
