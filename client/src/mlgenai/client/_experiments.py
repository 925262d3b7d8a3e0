"""Experiment helpers of :class:`mlgenai.client.Client` (dicts in, dicts out)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from google.protobuf import field_mask_pb2

from mlgenai.client.convert import to_dict
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import common_pb2, experiment_pb2, experiment_service_pb2 as svc
from mlgenai.v1.experiment_service_pb2_grpc import ExperimentServiceStub

_VIEWS = {
    "ACTIVE_ONLY": common_pb2.VIEW_TYPE_ACTIVE_ONLY,
    "DELETED_ONLY": common_pb2.VIEW_TYPE_DELETED_ONLY,
    "ALL": common_pb2.VIEW_TYPE_ALL,
}


class ExperimentsMixin:
    experiments: ExperimentServiceStub

    def create_experiment(
        self,
        name: str,
        *,
        tags: Mapping[str, str] | None = None,
        artifact_location: str = "",
        request_id: str = "",
    ) -> dict[str, Any]:
        req = svc.CreateExperimentRequest(
            name=name, artifact_location=artifact_location, tags=dict(tags or {}), request_id=request_id
        )
        return to_dict(self.experiments.CreateExperiment(req))

    def get_experiment(self, experiment_id: str) -> dict[str, Any]:
        return to_dict(self.experiments.GetExperiment(svc.GetExperimentRequest(experiment_id=experiment_id)))

    def get_experiment_by_name(self, name: str) -> dict[str, Any]:
        return to_dict(self.experiments.GetExperimentByName(svc.GetExperimentByNameRequest(name=name)))

    def rename_experiment(self, experiment_id: str, name: str) -> dict[str, Any]:
        req = svc.UpdateExperimentRequest(
            experiment=experiment_pb2.Experiment(experiment_id=experiment_id, name=name),
            update_mask=field_mask_pb2.FieldMask(paths=["name"]),
        )
        return to_dict(self.experiments.UpdateExperiment(req))

    def delete_experiment(self, experiment_id: str) -> dict[str, Any]:
        req = svc.DeleteExperimentRequest(experiment_id=experiment_id)
        return to_dict(self.experiments.DeleteExperiment(req))

    def undelete_experiment(self, experiment_id: str) -> dict[str, Any]:
        req = svc.UndeleteExperimentRequest(experiment_id=experiment_id)
        return to_dict(self.experiments.UndeleteExperiment(req))

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        req = svc.SetExperimentTagRequest(experiment_id=experiment_id, key=key, value=value)
        self.experiments.SetExperimentTag(req)

    def delete_experiment_tag(self, experiment_id: str, key: str) -> None:
        self.experiments.DeleteExperimentTag(svc.DeleteExperimentTagRequest(experiment_id=experiment_id, key=key))

    def search_experiments(
        self,
        filter: str = "",
        *,
        order_by: Sequence[str] = (),
        view: str = "ACTIVE_ONLY",
        page_size: int = 0,
    ) -> Iterator[dict[str, Any]]:
        """Every matching experiment, fetching pages as the iterator advances.

        ``view`` is ``ACTIVE_ONLY``, ``DELETED_ONLY`` or ``ALL``.
        """
        if view not in _VIEWS:
            raise ValueError(f"view must be one of {sorted(_VIEWS)}")
        req = svc.SearchExperimentsRequest(
            filter=filter, order_by=list(order_by), view=_VIEWS[view], page_size=page_size
        )
        for exp in iter_pages(self.experiments.SearchExperiments, req, "experiments"):
            yield to_dict(exp)
