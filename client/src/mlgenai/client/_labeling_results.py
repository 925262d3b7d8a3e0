"""Labeling result helpers of :class:`mlgenai.client.Client` (dicts in, dicts out): inter-rater
agreement and sync of a session's completed items into a dataset.

>>> [(a["name"], a["statistic"], a["value"]) for a in client.get_agreement(session_id)]
[('correct', 'cohen_kappa', 0.4), ('answer', 'none', None)]
>>> client.sync_to_dataset(session_id)["merge"]["version"]
3
"""

from __future__ import annotations

from typing import Any

from mlgenai.client.convert import to_dict
from mlgenai.v1 import labeling_service_pb2 as svc
from mlgenai.v1.labeling_service_pb2_grpc import LabelingServiceStub


class LabelingResultsMixin:
    labeling: LabelingServiceStub

    def get_agreement(self, session_id: str) -> list[dict[str, Any]]:
        """Per schema of the session, in order: ``schema_id``, ``name``, ``statistic``
        ("cohen_kappa", "fleiss_kappa", "krippendorff_alpha" or "none"), ``value`` and
        ``observed_agreement`` (None when undefined), ``items``, ``raters``."""
        resp = self.labeling.GetAgreement(svc.GetAgreementRequest(labeling_session_id=session_id))
        return [to_dict(s) for s in resp.schemas]

    def sync_to_dataset(self, session_id: str, dataset_id: str = "") -> dict[str, Any]:
        """Merge one record per COMPLETED item into ``dataset_id`` (default: the session's).
        Returns ``merge`` (the MergeRecords result: counts, ``results``, ``version``,
        ``digest``, ``num_records``), ``items`` synced and ``disagreements``."""
        req = svc.SyncToDatasetRequest(labeling_session_id=session_id, dataset_id=dataset_id)
        return to_dict(self.labeling.SyncToDataset(req))
