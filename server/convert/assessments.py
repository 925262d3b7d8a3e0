"""Assessment: domain -> proto."""

from __future__ import annotations

from mlgenai.client.convert import to_value
from mlgenai.v1 import assessment_pb2
from server.convert.common import timestamp
from store.domain import Assessment

SOURCE_TYPES = {
    assessment_pb2.ASSESSMENT_SOURCE_TYPE_HUMAN: "HUMAN",
    assessment_pb2.ASSESSMENT_SOURCE_TYPE_LLM_JUDGE: "LLM_JUDGE",
    assessment_pb2.ASSESSMENT_SOURCE_TYPE_CODE: "CODE",
}
SOURCE_TYPES_TO_PROTO = {v: k for k, v in SOURCE_TYPES.items()}


def to_proto(a: Assessment) -> assessment_pb2.Assessment:
    msg = assessment_pb2.Assessment(
        assessment_id=a.assessment_id,
        trace_id=a.trace_id,
        span_id=a.span_id,
        name=a.name,
        source=assessment_pb2.AssessmentSource(
            source_type=SOURCE_TYPES_TO_PROTO[a.source.source_type], source_id=a.source.source_id
        ),
        rationale=a.rationale,
        metadata=a.metadata,
        run_id=a.run_id,
        overrides=a.overrides,
        valid=a.valid,
        create_time=timestamp(a.create_time_ms),
        update_time=timestamp(a.update_time_ms),
    )
    if a.kind == "expectation":
        msg.expectation.value.CopyFrom(to_value(a.value))
    elif a.error is not None:
        msg.feedback.error.CopyFrom(assessment_pb2.AssessmentError(**a.error))
    else:
        msg.feedback.value.CopyFrom(to_value(a.value))
    return msg
