"""EvaluationRunService (SPEC §7). To be written."""

from __future__ import annotations

from mlgenai.v1 import evaluation_run_service_pb2_grpc
from store.uow import Database


class RunServicer(evaluation_run_service_pb2_grpc.EvaluationRunServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db
