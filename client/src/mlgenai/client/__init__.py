"""The hand-written layer of the mlgenai client.

>>> from mlgenai.client import connect
>>> with connect("127.0.0.1:50051") as client:
...     exp = client.create_experiment("my-agent", tags={"team": "search"})
...     for e in client.search_experiments("tags.team = 'search'"):
...         print(e["experiment_id"], e["name"])

``client.experiments`` (and one attribute per service) is the generated stub itself, for callers
who want protobuf messages; the helper methods take and return plain Python values. Every call
has a default deadline, is retried on UNAVAILABLE, and raises :class:`MlgenaiError` subclasses
that carry the status code, ``reason`` and field violations.
"""

from __future__ import annotations

from collections.abc import Sequence
from types import TracebackType
from typing import Any

import grpc

from mlgenai.client._analytics import AnalyticsMixin
from mlgenai.client._assessments import AssessmentsMixin, assessment
from mlgenai.client._datasets import DatasetsMixin
from mlgenai.client._evaluation import Evaluation, EvaluationMixin, format_comparison
from mlgenai.client._experiments import ExperimentsMixin
from mlgenai.client._label_schemas import LabelSchemasMixin
from mlgenai.client._labeling import LabelingMixin
from mlgenai.client._labeling_results import LabelingResultsMixin
from mlgenai.client._models import LoggedModelsMixin
from mlgenai.client._runs import RunsMixin
from mlgenai.client._traces import TracesMixin, new_span_id, new_trace_id, span
from mlgenai.client.channel import DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_RETRY, RetryPolicy, open_channel
from mlgenai.client.convert import from_struct, from_value, to_dict, to_struct, to_value
from mlgenai.client.errors import (
    AbortedError,
    AlreadyExistsError,
    DeadlineExceededError,
    FailedPreconditionError,
    FieldViolation,
    InternalError,
    InvalidArgumentError,
    MlgenaiError,
    NotFoundError,
    ResourceExhaustedError,
    UnavailableError,
    from_rpc_error,
)
from mlgenai.client.paging import iter_pages
from mlgenai.v1.analytics_service_pb2_grpc import AnalyticsServiceStub
from mlgenai.v1.assessment_service_pb2_grpc import AssessmentServiceStub
from mlgenai.v1.evaluation_dataset_service_pb2_grpc import EvaluationDatasetServiceStub
from mlgenai.v1.evaluation_run_service_pb2_grpc import EvaluationRunServiceStub
from mlgenai.v1.experiment_service_pb2_grpc import ExperimentServiceStub
from mlgenai.v1.labeling_service_pb2_grpc import LabelingServiceStub
from mlgenai.v1.logged_model_service_pb2_grpc import LoggedModelServiceStub
from mlgenai.v1.trace_service_pb2_grpc import TraceServiceStub

__all__ = [
    "AbortedError",
    "AlreadyExistsError",
    "Client",
    "DeadlineExceededError",
    "Evaluation",
    "FailedPreconditionError",
    "FieldViolation",
    "InternalError",
    "InvalidArgumentError",
    "MlgenaiError",
    "NotFoundError",
    "ResourceExhaustedError",
    "RetryPolicy",
    "UnavailableError",
    "assessment",
    "connect",
    "format_comparison",
    "from_rpc_error",
    "from_struct",
    "from_value",
    "iter_pages",
    "new_span_id",
    "new_trace_id",
    "span",
    "to_dict",
    "to_struct",
    "to_value",
]


class Client(
    ExperimentsMixin,
    TracesMixin,
    AssessmentsMixin,
    DatasetsMixin,
    LoggedModelsMixin,
    RunsMixin,
    AnalyticsMixin,
    EvaluationMixin,
    LabelSchemasMixin,
    LabelingMixin,
    LabelingResultsMixin,
):
    """Stubs for every mlgenai service over one channel, plus dict-level helpers."""

    def __init__(self, channel: grpc.Channel) -> None:
        self.channel = channel
        self.experiments = ExperimentServiceStub(channel)
        self.traces = TraceServiceStub(channel)
        self.assessments = AssessmentServiceStub(channel)
        self.datasets = EvaluationDatasetServiceStub(channel)
        self.models = LoggedModelServiceStub(channel)
        self.runs = EvaluationRunServiceStub(channel)
        self.analytics = AnalyticsServiceStub(channel)
        self.labeling = LabelingServiceStub(channel)

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def connect(
    target: str = "127.0.0.1:50051",
    *,
    timeout: float | None = 30.0,
    retry: RetryPolicy | None = DEFAULT_RETRY,
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES,
    credentials: grpc.ChannelCredentials | None = None,
    options: Sequence[tuple[str, Any]] = (),
    connections: int = 1,
) -> Client:
    """Connect to an mlgenai server (the channel connects lazily, on the first call).

    ``connections``: how many connections to open and use in turn. A server with ``--workers N``
    serves each connection from one worker process, so a client that should reach all of them
    (a load generator, a bulk import from many threads) opens at least N.
    """
    channel = open_channel(
        target,
        timeout=timeout,
        retry=retry,
        max_message_bytes=max_message_bytes,
        credentials=credentials,
        options=options,
        connections=connections,
    )
    return Client(channel)
