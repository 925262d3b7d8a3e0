"""LabelingService: sessions, items, claims, submissions and skips (SPEC §8.2–§8.3)."""

from __future__ import annotations

import grpc

from mlgenai.v1 import labeling_service_pb2 as pb, labeling_session_pb2 as lpb
from server.convert.common import now_ms
from server.convert.labeling import (
    check_item_id,
    check_rater,
    check_session_id,
    item_ids,
    item_sources,
    item_states,
    item_to_proto,
    labels,
    lease_ms,
    lease_to_proto,
    new_session,
    session_changes,
    session_to_proto,
    submission_to_proto,
)
from server.idempotency import idempotent_write
from server.validation import Violations
from store.labeling_domain import SessionChanges
from store.query.keyset import page_size_of
from store.uow import Database

Ctx = grpc.ServicerContext
LabelingSession = lpb.LabelingSession


def _valid_session_id(value: str) -> None:
    checks = Violations()
    check_session_id(checks, value)
    checks.raise_if_any()


def _item_request(session_id: str, item_id: str, rater: str) -> Violations:
    checks = Violations()
    check_session_id(checks, session_id)
    check_item_id(checks, item_id)
    check_rater(checks, rater)
    return checks


class LabelingSessionMethods:
    db: Database

    # -- sessions --------------------------------------------------------------------------

    def CreateLabelingSession(self, request: pb.CreateLabelingSessionRequest, context: Ctx) -> LabelingSession:
        new = new_session(request)
        return idempotent_write(
            self.db,
            "CreateLabelingSession",
            request,
            LabelingSession,
            lambda uow: session_to_proto(uow.labeling.create(new, now_ms())),
        )

    def GetLabelingSession(self, request: pb.GetLabelingSessionRequest, context: Ctx) -> LabelingSession:
        _valid_session_id(request.labeling_session_id)
        return session_to_proto(self.db.read(lambda uow: uow.labeling.get(request.labeling_session_id, now_ms())))

    def ListLabelingSessions(
        self, request: pb.ListLabelingSessionsRequest, context: Ctx
    ) -> pb.ListLabelingSessionsResponse:
        size = page_size_of(request.page_size)  # the experiment id is checked by the store
        page = self.db.read(lambda uow: uow.labeling.page(request.experiment_id, size, request.page_token, now_ms()))
        return pb.ListLabelingSessionsResponse(
            labeling_sessions=[session_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )

    def UpdateLabelingSession(self, request: pb.UpdateLabelingSessionRequest, context: Ctx) -> LabelingSession:
        changes = session_changes(request)
        session_id = request.labeling_session.labeling_session_id
        if changes == SessionChanges():
            return session_to_proto(self.db.read(lambda uow: uow.labeling.get(session_id, now_ms())))
        return session_to_proto(self.db.write(lambda uow: uow.labeling.update(session_id, changes, now_ms())))

    def DeleteLabelingSession(
        self, request: pb.DeleteLabelingSessionRequest, context: Ctx
    ) -> pb.DeleteLabelingSessionResponse:
        _valid_session_id(request.labeling_session_id)
        self.db.write(lambda uow: uow.labeling.delete(request.labeling_session_id, request.allow_missing))
        return pb.DeleteLabelingSessionResponse()

    # -- items -----------------------------------------------------------------------------

    def AddItems(self, request: pb.AddItemsRequest, context: Ctx) -> pb.AddItemsResponse:
        sources = item_sources(request)
        items, added = self.db.write(lambda uow: uow.labeling.add_items(request.labeling_session_id, sources, now_ms()))
        return pb.AddItemsResponse(items=[item_to_proto(i) for i in items], added=added)

    def RemoveItems(self, request: pb.RemoveItemsRequest, context: Ctx) -> pb.RemoveItemsResponse:
        ids = item_ids(request)
        removed = self.db.write(lambda uow: uow.labeling.remove_items(request.labeling_session_id, ids, now_ms()))
        return pb.RemoveItemsResponse(removed=removed)

    def ListItems(self, request: pb.ListItemsRequest, context: Ctx) -> pb.ListItemsResponse:
        checks = Violations()
        check_session_id(checks, request.labeling_session_id)
        states = item_states(checks, request.states)
        if request.rater:
            check_rater(checks, request.rater)
        checks.raise_if_any()
        size = page_size_of(request.page_size)
        page = self.db.read(
            lambda uow: uow.labeling.list_items(
                request.labeling_session_id, states, request.rater, size, request.page_token, now_ms()
            )
        )
        return pb.ListItemsResponse(items=[item_to_proto(i) for i in page.items], next_page_token=page.next_page_token)

    # -- claims, submissions, skips -------------------------------------------------------

    def ClaimNextItem(self, request: pb.ClaimNextItemRequest, context: Ctx) -> pb.ClaimNextItemResponse:
        checks = Violations()
        check_session_id(checks, request.labeling_session_id)
        check_rater(checks, request.rater)
        lease = (
            lease_ms(checks, "lease_duration", request.lease_duration) if request.HasField("lease_duration") else None
        )
        checks.raise_if_any()
        claim = self.db.write(
            lambda uow: uow.labeling.claim(request.labeling_session_id, request.rater, lease, now_ms())
        )
        if claim is None:
            return pb.ClaimNextItemResponse()
        return pb.ClaimNextItemResponse(item=item_to_proto(claim.item), lease=lease_to_proto(claim.lease))

    def SubmitLabels(self, request: pb.SubmitLabelsRequest, context: Ctx) -> pb.SubmitLabelsResponse:
        checks = _item_request(request.labeling_session_id, request.item_id, request.rater)
        given = labels(checks, request.labels)
        checks.raise_if_any()
        submission, item = self.db.write(
            lambda uow: uow.labeling.submit(
                request.labeling_session_id, request.item_id, request.rater, given, now_ms()
            )
        )
        return pb.SubmitLabelsResponse(submission=submission_to_proto(submission), item=item_to_proto(item))

    def SkipItem(self, request: pb.SkipItemRequest, context: Ctx) -> pb.SkipItemResponse:
        _item_request(request.labeling_session_id, request.item_id, request.rater).raise_if_any()
        item = self.db.write(
            lambda uow: uow.labeling.skip(request.labeling_session_id, request.item_id, request.rater, now_ms())
        )
        return pb.SkipItemResponse(item=item_to_proto(item))

    def ListSubmissions(self, request: pb.ListSubmissionsRequest, context: Ctx) -> pb.ListSubmissionsResponse:
        checks = Violations()
        check_session_id(checks, request.labeling_session_id)
        if request.item_id:
            check_item_id(checks, request.item_id)
        if request.rater:
            check_rater(checks, request.rater)
        checks.raise_if_any()
        size = page_size_of(request.page_size)
        page = self.db.read(
            lambda uow: uow.labeling.submissions(
                request.labeling_session_id, request.item_id, request.rater, size, request.page_token
            )
        )
        return pb.ListSubmissionsResponse(
            submissions=[submission_to_proto(s) for s in page.items], next_page_token=page.next_page_token
        )
