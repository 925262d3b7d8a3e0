"""LoggedModelService (SPEC §6). To be written."""

from __future__ import annotations

from mlgenai.v1 import logged_model_service_pb2_grpc
from store.uow import Database


class LoggedModelServicer(logged_model_service_pb2_grpc.LoggedModelServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db
