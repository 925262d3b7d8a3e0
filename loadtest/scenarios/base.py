"""What a scenario is, and the setup steps the scenarios share.

A scenario is a weighted set of *steps*, each one thing a real caller does (export a trace,
judge a run, read a page); an operation of the driver is one step picked at random by weight.
Before the load starts the scenario creates what its steps need (an experiment, traces, a
dataset) so that every step is valid from the first second: the only errors left are the
server's.
"""

from __future__ import annotations

import itertools
import random
import uuid
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import ClassVar

from bench.dataset_seed import seed_record
from bench.trace_ops import SpanBatches
from loadtest.calls import Calls
from mlgenai.v1 import (
    evaluation_dataset_pb2 as dataset_pb,
    evaluation_dataset_service_pb2 as dpb,
    experiment_service_pb2 as epb,
)

Action = Callable[[Calls], Awaitable[None]]
SETUP_CALLER = 0  # trace-id stamp of the setup's traces (the steps use 1, 2, ...)


@dataclass(frozen=True)
class Step:
    name: str
    weight: float
    run: Action


class Scenario(ABC):
    """A named workload: ``setup`` once, then ``steps`` picked by weight."""

    name: ClassVar[str]
    methods: ClassVar[tuple[str, ...]]  # the methods its steps call, as the report names them
    expected_codes: ClassVar[frozenset[str]] = frozenset()  # status codes that are not failures

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng
        self.nonce = rng.getrandbits(32)  # in every trace id: runs never collide on one server
        self._seq = itertools.count(1)

    def next_seq(self) -> int:
        return next(self._seq)

    @abstractmethod
    async def setup(self, calls: Calls) -> list[str]:
        """Create what the steps need; returns one line per thing created (printed)."""

    @abstractmethod
    def steps(self) -> list[Step]: ...

    def picker(self) -> Callable[[], Step]:
        """A function drawing one step by weight."""
        steps = self.steps()
        cumulative = list(itertools.accumulate(s.weight for s in steps))
        return lambda: self.rng.choices(steps, cum_weights=cumulative)[0]


def unique_name(kind: str) -> str:
    return f"loadtest-{kind}-{uuid.uuid4().hex[:8]}"


async def create_experiment(calls: Calls, kind: str) -> str:
    req = epb.CreateExperimentRequest(name=unique_name(kind), tags={"created_by": "loadtest"})
    experiment = await calls.unary("ExperimentService/CreateExperiment", calls.experiments.CreateExperiment, req)
    return experiment.experiment_id


async def seed_traces(calls: Calls, experiment_id: str, nonce: int, traces: int, spans: int) -> list[str]:
    """``traces`` traces of ``spans`` spans in one LogSpans call; returns their ids."""
    batches = SpanBatches(experiment_id, nonce, traces=traces, spans=spans)
    await calls.unary("TraceService/LogSpans", calls.log_spans_raw, batches(SETUP_CALLER, 0))
    return batches.trace_ids(SETUP_CALLER, 0)


def records(batch: str, count: int) -> list[dataset_pb.DatasetRecord]:
    """``count`` records with new inputs (``batch`` makes them unique), shaped like seed 003's."""
    return [seed_record(batch, i, "v1") for i in range(count)]


async def create_dataset(calls: Calls, experiment_id: str, count: int) -> str:
    """A dataset of the experiment holding ``count`` records; returns its id."""
    req = dpb.CreateDatasetRequest(name=unique_name("dataset"), experiment_ids=[experiment_id])
    dataset = await calls.unary("EvaluationDatasetService/CreateDataset", calls.datasets.CreateDataset, req)
    merge = dpb.MergeRecordsRequest(dataset_id=dataset.dataset_id, records=records("setup", count))
    await calls.unary("EvaluationDatasetService/MergeRecords", calls.datasets.MergeRecords, merge)
    return dataset.dataset_id


def pick(rng: random.Random, items: Sequence[str]) -> str:
    return items[rng.randrange(len(items))]
