"""The stubs a scenario calls through, each call timed and recorded under its method name.

Scenarios call ``await calls.unary(method, stub.Method, request)``: the method name is what the
report groups by (``TraceService/LogSpans``, ``OTLP/Export``). A failed call is recorded with
its status code name and the ``grpc.aio.AioRpcError`` re-raised, so the scenario's action stops
(its later steps depend on the answer) and the driver moves on. During setup there is no
recorder: a failure there stops the program, since nothing after it would mean anything.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TypeVar

import grpc
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp_pb

from loadtest.stats import Recorder
from mlgenai.v1 import (
    analytics_service_pb2_grpc as analytics_grpc,
    assessment_service_pb2_grpc as assessment_grpc,
    evaluation_dataset_service_pb2_grpc as dataset_grpc,
    evaluation_run_service_pb2_grpc as run_grpc,
    experiment_service_pb2_grpc as experiment_grpc,
    trace_service_pb2_grpc as trace_grpc,
)

Req = TypeVar("Req")
Resp = TypeVar("Resp")
Metadata = Sequence[tuple[str, str]]
OTLP_EXPORT = "/opentelemetry.proto.collector.trace.v1.TraceService/Export"
LOG_SPANS = "/mlgenai.v1.TraceService/LogSpans"


def _raw(payload: bytes) -> bytes:
    return payload


class Calls:
    """The generated ``grpc.aio`` stubs of one channel, plus two raw-bytes callables for the
    span writes (their requests are prebuilt bytes, ``bench.trace_ops.SpanBatches``)."""

    def __init__(self, channel: grpc.aio.Channel, recorder: Recorder | None, timeout_s: float) -> None:
        self.recorder = recorder
        self.timeout_s = timeout_s
        self.experiments = experiment_grpc.ExperimentServiceStub(channel)
        self.traces = trace_grpc.TraceServiceStub(channel)
        self.assessments = assessment_grpc.AssessmentServiceStub(channel)
        self.datasets = dataset_grpc.EvaluationDatasetServiceStub(channel)
        self.runs = run_grpc.EvaluationRunServiceStub(channel)
        self.analytics = analytics_grpc.AnalyticsServiceStub(channel)
        self.log_spans_raw: grpc.aio.UnaryUnaryMultiCallable[bytes, bytes] = channel.unary_unary(
            LOG_SPANS, request_serializer=_raw, response_deserializer=_raw
        )
        self.otlp_export: grpc.aio.UnaryUnaryMultiCallable[bytes, otlp_pb.ExportTraceServiceResponse] = (
            channel.unary_unary(
                OTLP_EXPORT,
                request_serializer=_raw,
                response_deserializer=otlp_pb.ExportTraceServiceResponse.FromString,
            )
        )

    async def unary(
        self,
        method: str,
        rpc: grpc.aio.UnaryUnaryMultiCallable[Req, Resp],
        request: Req,
        metadata: Metadata | None = None,
    ) -> Resp:
        """Call ``rpc`` and record it as ``method``."""
        start = time.perf_counter()
        try:
            response: Resp = await rpc(request, timeout=self.timeout_s, metadata=metadata)
        except grpc.aio.AioRpcError as exc:
            if self.recorder is not None:
                self.recorder.record(method, start, time.perf_counter(), exc.code().name)
            raise
        if self.recorder is not None:
            self.recorder.record(method, start, time.perf_counter())
        return response

    def record_failure(self, action: str, exc: BaseException, start: float) -> None:
        """A failure that is not a gRPC status (a bad answer, a bug): always unexpected."""
        if self.recorder is not None:
            self.recorder.record(f"{action} (client)", start, time.perf_counter(), type(exc).__name__)
