"""``eval``: an evaluation harness (CI jobs and notebooks running ``mlflow.genai.evaluate``).

It keeps its dataset growing (MergeRecords of new test cases), starts evaluation runs pinned
to the dataset's current version and links the traces it evaluated (CreateRun,
LinkTracesToRun), writes its judges' scores in batches (BatchCreateAssessments with the run id)
and reads the run's aggregates back (GetRunResults) — the loop of every evaluation.
"""

from __future__ import annotations

import collections
import random

from bench.trace_ops import feedback
from loadtest.calls import Calls
from loadtest.scenarios.base import Scenario, Step, create_dataset, create_experiment, pick, records, seed_traces
from mlgenai.v1 import (
    analytics_service_pb2 as anpb,
    assessment_service_pb2 as apb,
    evaluation_dataset_service_pb2 as dpb,
    evaluation_run_pb2 as run_pb,
    evaluation_run_service_pb2 as rpb,
    trace_service_pb2 as tpb,
)

TRACES = 40  # the traces the harness evaluates (seeded)
RECORDS_PER_MERGE = 10
SCORES_PER_BATCH = 20
JUDGES = ("correctness", "relevance", "groundedness")
RECENT_RUNS = 20  # judges and readers pick one of the latest runs


class EvalScenario(Scenario):
    name = "eval"
    methods = (
        "EvaluationDatasetService/MergeRecords",
        "EvaluationRunService/CreateRun",
        "TraceService/LinkTracesToRun",
        "AssessmentService/BatchCreateAssessments",
        "AnalyticsService/GetRunResults",
    )

    def __init__(self, rng: random.Random) -> None:
        super().__init__(rng)
        self.experiment_id = self.dataset_id = ""
        self.traces: list[str] = []
        self.runs: collections.deque[str] = collections.deque(maxlen=RECENT_RUNS)

    async def setup(self, calls: Calls) -> list[str]:
        self.experiment_id = await create_experiment(calls, self.name)
        self.traces = await seed_traces(calls, self.experiment_id, self.nonce, TRACES, 4)
        self.dataset_id = await create_dataset(calls, self.experiment_id, 50)
        await self.start_run(calls)
        await self.judge(calls)
        return [
            f"eval: experiment {self.experiment_id} with {TRACES} traces, dataset {self.dataset_id} with 50 records,"
            f" run {self.runs[-1]} with {SCORES_PER_BATCH} scores"
        ]

    def steps(self) -> list[Step]:
        return [
            Step("merge_records", 2, self.merge),
            Step("start_run", 1, self.start_run),
            Step("judge", 3, self.judge),
            Step("run_results", 3, self.results),
        ]

    async def merge(self, calls: Calls) -> None:
        """New test cases for the dataset (a new version)."""
        batch = f"{self.nonce:08x}-{self.next_seq()}"
        req = dpb.MergeRecordsRequest(dataset_id=self.dataset_id, records=records(batch, RECORDS_PER_MERGE))
        await calls.unary("EvaluationDatasetService/MergeRecords", calls.datasets.MergeRecords, req)

    async def start_run(self, calls: Calls) -> None:
        """A run pinned to the dataset's current version, with 10 of the traces linked."""
        req = rpb.CreateRunRequest(
            experiment_id=self.experiment_id,
            name=f"loadtest-eval-{self.nonce:08x}-{self.next_seq()}",
            dataset=run_pb.RunDataset(dataset_id=self.dataset_id),
            params={"judge_model": "gpt-4o", "prompt_version": "7"},
        )
        run = await calls.unary("EvaluationRunService/CreateRun", calls.runs.CreateRun, req)
        linked = self.rng.sample(self.traces, 10)
        link = tpb.LinkTracesToRunRequest(run_id=run.run_id, trace_ids=linked)
        await calls.unary("TraceService/LinkTracesToRun", calls.traces.LinkTracesToRun, link)
        self.runs.append(run.run_id)

    async def judge(self, calls: Calls) -> None:
        """The judges' scores of one slice of a run, in one batch."""
        run_id = pick(self.rng, self.runs)
        scores = []
        for i in range(SCORES_PER_BATCH):
            score = feedback(pick(self.rng, self.traces), round(self.rng.random(), 2), JUDGES[i % len(JUDGES)])
            score.run_id = run_id
            scores.append(score)
        req = apb.BatchCreateAssessmentsRequest(assessments=scores)
        await calls.unary("AssessmentService/BatchCreateAssessments", calls.assessments.BatchCreateAssessments, req)

    async def results(self, calls: Calls) -> None:
        """A dashboard or the harness reading a run's aggregates."""
        req = anpb.GetRunResultsRequest(run_id=pick(self.rng, self.runs))
        await calls.unary("AnalyticsService/GetRunResults", calls.analytics.GetRunResults, req)
