"""TraceInfo and Trace: domain -> proto; StartTrace's TraceInfo -> store input."""

from __future__ import annotations

from google.protobuf.duration_pb2 import Duration

from mlgenai.v1 import trace_pb2
from server.convert import assessments
from server.convert.common import timestamp
from server.preserialized import field, repeated
from store.domain import TRACE_ERROR, TRACE_IN_PROGRESS, TRACE_OK, TraceInfo

STATES = {
    trace_pb2.TRACE_STATE_OK: TRACE_OK,
    trace_pb2.TRACE_STATE_ERROR: TRACE_ERROR,
    trace_pb2.TRACE_STATE_IN_PROGRESS: TRACE_IN_PROGRESS,
}
STATES_TO_PROTO = {v: k for k, v in STATES.items()}


def info_to_proto(info: TraceInfo) -> trace_pb2.TraceInfo:
    duration = info.execution_duration_ms
    usage = info.token_usage
    msg = trace_pb2.TraceInfo(
        trace_id=info.trace_id,
        experiment_id=info.experiment_id,
        client_request_id=info.client_request_id,
        request_time=timestamp(info.request_time_ms),
        execution_duration=Duration(seconds=duration // 1000, nanos=duration % 1000 * 1_000_000)
        if duration is not None
        else None,
        state=STATES_TO_PROTO[info.state],
        request_preview=info.request_preview,
        response_preview=info.response_preview,
        trace_metadata=info.metadata,
        tags=info.tags,
        session_id=info.session_id,
        user_id=info.user_id,
        model_id=info.model_id,
        run_id=info.run_id,
        name=info.name,
        span_count=info.span_count,
        token_usage=trace_pb2.TokenUsage(
            input_tokens=usage.input_tokens, output_tokens=usage.output_tokens, total_tokens=usage.total_tokens
        )
        if usage is not None
        else None,
    )
    add = msg.assessments.add
    for a in info.assessments:
        assessments.fill_proto(add(), a)
    return msg


def trace_bytes(info: TraceInfo, spans: list[bytes] | None) -> bytes:
    """The serialized ``Trace`` of ``info`` and the stored spans (see ``server/preserialized.py``)."""
    return field(1, info_to_proto(info).SerializeToString()) + repeated(2, spans or ())
