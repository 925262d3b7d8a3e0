"""The workload of issue 6 (group ``labeling``): 16 raters, each a caller, repeatedly claim the
next item of one session (ClaimNextItem) and submit a pass/fail label for it (SubmitLabels).
One call is the whole round trip, so calls/s are labels/s and the latency is the pair's.

Fixture (``prepare_labeling``, prepare "labeling"): a pass/fail schema and a session with
N = 3 raters per item over 20,000 of the seeded traces (60,000 slots: more than a run uses).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.struct_pb2 import Value

from bench.loadgen import CALL_TIMEOUT_S, Call
from bench.trace_suite import TraceContext
from bench.workload import Workload
from mlgenai.v1 import (
    label_schema_pb2 as lpb,
    labeling_service_pb2 as pb,
    labeling_service_pb2_grpc,
    labeling_session_pb2 as spb,
)

LABELING_SERVICE = "/mlgenai.v1.LabelingService/"
SESSION_ITEMS = 20_000
RATERS = 16


class NothingToLabel(Exception):
    """ClaimNextItem returned no item: the fixture's session ran out."""


@dataclass(frozen=True)
class ClaimAndSubmit:
    """ClaimNextItem then SubmitLabels (value true) as rater ``rater-<caller>``."""

    session_id: str
    schema_id: str
    timeout_s: float = CALL_TIMEOUT_S

    def bind(self, channel: grpc.aio.Channel) -> Call:
        claim: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(LABELING_SERVICE + "ClaimNextItem")
        submit: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(LABELING_SERVICE + "SubmitLabels")
        label = spb.Label(schema_id=self.schema_id, value=Value(bool_value=True))

        async def call(caller: int, seq: int) -> Any:
            rater = f"rater-{caller}"
            request = pb.ClaimNextItemRequest(labeling_session_id=self.session_id, rater=rater)
            claimed = pb.ClaimNextItemResponse.FromString(
                await claim(request.SerializeToString(), timeout=self.timeout_s)
            )
            if not claimed.HasField("item"):
                raise NothingToLabel(self.session_id)
            labels = pb.SubmitLabelsRequest(
                labeling_session_id=self.session_id, item_id=claimed.item.item_id, rater=rater, labels=[label]
            )
            return await submit(labels.SerializeToString(), timeout=self.timeout_s)

        return call


def prepare_labeling(target: str, experiment_id: str, trace_ids: list[str]) -> tuple[str, str]:
    """A pass/fail schema and a session (N = 3) over ``SESSION_ITEMS`` of the traces: (session, schema)."""
    with grpc.insecure_channel(target) as channel:
        stub = labeling_service_pb2_grpc.LabelingServiceStub(channel)
        schema = stub.CreateLabelSchema(
            pb.CreateLabelSchemaRequest(
                label_schema=lpb.LabelSchema(
                    experiment_id=experiment_id,
                    name="bench_correct",
                    type=lpb.LABEL_SCHEMA_TYPE_FEEDBACK,
                    pass_fail=lpb.PassFailInput(),
                )
            ),
            timeout=30,
        )
        session = stub.CreateLabelingSession(
            pb.CreateLabelingSessionRequest(
                labeling_session=spb.LabelingSession(
                    experiment_id=experiment_id,
                    name="bench-review",
                    label_schema_ids=[schema.schema_id],
                    raters_per_item=3,
                )
            ),
            timeout=30,
        )
        items = trace_ids[:SESSION_ITEMS]
        for start in range(0, len(items), 1_000):
            sources = [spb.LabelingItemSource(trace_id=t) for t in items[start : start + 1_000]]
            stub.AddItems(
                pb.AddItemsRequest(labeling_session_id=session.labeling_session_id, sources=sources), timeout=60
            )
    return session.labeling_session_id, schema.schema_id


def labeling_workloads(ctx: TraceContext) -> list[Workload]:
    return [
        Workload(
            "label_c16",
            "ClaimNextItem+SubmitLabels",
            f"{RATERS} raters, one session of {SESSION_ITEMS:,} trace items, N = 3",
            ClaimAndSubmit(ctx.labeling_session, ctx.labeling_schema),
            RATERS,
            group="labeling",
            per_call=1,
            item="labels",
            prepare="labeling",
        )
    ]
