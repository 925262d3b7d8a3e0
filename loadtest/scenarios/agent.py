"""``agent``: an agent platform in production.

Its instrumented agents export every request's trace as it ends — through an OpenTelemetry
exporter (OTLP Export, experiment in the ``x-mlflow-experiment-id`` header) or through the
mlgenai SDK (LogSpans) — and its users leave feedback on recent answers (CreateAssessment by
an LLM judge or a thumbs-up widget). Writes dominate; every trace id is new.
"""

from __future__ import annotations

import collections
import random

from bench.trace_ops import EXPERIMENT_HEADER, SpanBatches, feedback
from loadtest.calls import Calls
from loadtest.scenarios.base import Scenario, Step, create_experiment, seed_traces
from mlgenai.v1 import assessment_service_pb2 as apb

EXPORT_CALLER, LOG_SPANS_CALLER = 1, 2  # trace-id stamps: the two writers never share an id
SPANS_PER_TRACE = 6
RECENT_TRACES = 1_000  # feedback goes to one of the latest traces written


class AgentScenario(Scenario):
    name = "agent"
    methods = ("OTLP/Export", "TraceService/LogSpans", "AssessmentService/CreateAssessment")
    otlp: SpanBatches  # the requests, once the experiment exists
    sdk: SpanBatches

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.experiment_id = ""
        self.recent: collections.deque[str] = collections.deque(maxlen=RECENT_TRACES)

    async def setup(self, calls: Calls) -> list[str]:
        self.experiment_id = await create_experiment(calls, self.name)
        self.recent.extend(await seed_traces(calls, self.experiment_id, self.nonce, 10, SPANS_PER_TRACE))
        self.otlp = SpanBatches(self.experiment_id, self.nonce, traces=2, spans=SPANS_PER_TRACE, otlp=True)
        self.sdk = SpanBatches(self.experiment_id, self.nonce, traces=1, spans=SPANS_PER_TRACE)
        return [f"agent: experiment {self.experiment_id} with 10 traces of {SPANS_PER_TRACE} spans"]

    def steps(self) -> list[Step]:
        return [Step("export", 4, self.export), Step("log_spans", 3, self.log_spans), Step("feedback", 3, self.rate)]

    async def export(self, calls: Calls) -> None:
        """An OTLP exporter's batch: 2 traces × 6 spans; a rejected span is a failure."""
        seq = self.next_seq()
        metadata = ((EXPERIMENT_HEADER, self.experiment_id),)
        answer = await calls.unary("OTLP/Export", calls.otlp_export, self.otlp(EXPORT_CALLER, seq), metadata)
        if answer.partial_success.rejected_spans:
            raise ValueError(f"OTLP rejected spans: {answer.partial_success.error_message}")
        self.recent.extend(self.otlp.trace_ids(EXPORT_CALLER, seq))

    async def log_spans(self, calls: Calls) -> None:
        """The SDK's write of one finished trace."""
        seq = self.next_seq()
        await calls.unary("TraceService/LogSpans", calls.log_spans_raw, self.sdk(LOG_SPANS_CALLER, seq))
        self.recent.extend(self.sdk.trace_ids(LOG_SPANS_CALLER, seq))

    async def rate(self, calls: Calls) -> None:
        """Feedback on one of the latest traces."""
        trace_id = self.recent[self.rng.randrange(len(self.recent))]
        req = apb.CreateAssessmentRequest(assessment=feedback(trace_id, round(self.rng.random(), 2)))
        await calls.unary("AssessmentService/CreateAssessment", calls.assessments.CreateAssessment, req)
