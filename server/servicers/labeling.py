"""LabelingService (SPEC §8): label schemas and labeling sessions, one mixin per area."""

from __future__ import annotations

from mlgenai.v1 import labeling_service_pb2_grpc
from server.servicers.label_schemas import LabelSchemaMethods
from server.servicers.labeling_results import LabelingResultMethods
from server.servicers.labeling_sessions import LabelingSessionMethods
from store.uow import Database


class LabelingServicer(
    LabelSchemaMethods, LabelingSessionMethods, LabelingResultMethods, labeling_service_pb2_grpc.LabelingServiceServicer
):
    def __init__(self, db: Database) -> None:
        self.db = db
