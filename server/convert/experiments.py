"""Experiment: domain <-> proto."""

from __future__ import annotations

from mlgenai.v1 import experiment_pb2
from server.convert.common import LIFECYCLE, timestamp
from store.domain import Experiment


def to_proto(exp: Experiment) -> experiment_pb2.Experiment:
    return experiment_pb2.Experiment(
        experiment_id=exp.experiment_id,
        name=exp.name,
        artifact_location=exp.artifact_location,
        lifecycle_stage=LIFECYCLE[exp.lifecycle_stage],
        tags=exp.tags,
        create_time=timestamp(exp.create_time_ms),
        update_time=timestamp(exp.update_time_ms),
    )
