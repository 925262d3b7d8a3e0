"""Evaluation dataset helpers of :class:`mlgenai.client.Client` (dicts in, dicts out).

A record is a dict with ``inputs`` (a non-empty dict; required) and optionally ``outputs``
(any JSON value; ``None`` clears stored outputs on merge), ``expectations`` (dict), ``source``
(``{"source_type": "HUMAN", "source_data": {...}}``; types TRACE, HUMAN, DOCUMENT, CODE) and
``tags`` (dict of strings) — the shape of MLflow's dataset records:

>>> ds = client.create_dataset("qa-golden", experiment_ids=[exp_id])
>>> client.merge_records(ds["dataset_id"], [{"inputs": {"question": "2+2?"}, "expectations": {"answer": "4"}}])
{'created_count': 1, 'updated_count': 0, 'unchanged_count': 0, 'version': 1, ...}
>>> [r["expectations"] for r in client.iter_records(ds["dataset_id"])]
[{'answer': '4'}]
>>> old = list(client.iter_records(ds["dataset_id"], version=1))   # as it was at version 1
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

from mlgenai.client.convert import fill_struct, set_value, to_dict, to_struct
from mlgenai.client.paging import iter_pages
from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as pb
from mlgenai.v1.evaluation_dataset_service_pb2_grpc import EvaluationDatasetServiceStub

MERGE_BATCH_MAX = 10_000
_SOURCE_TYPES = {
    "TRACE": dpb.DATASET_RECORD_SOURCE_TYPE_TRACE,
    "HUMAN": dpb.DATASET_RECORD_SOURCE_TYPE_HUMAN,
    "DOCUMENT": dpb.DATASET_RECORD_SOURCE_TYPE_DOCUMENT,
    "CODE": dpb.DATASET_RECORD_SOURCE_TYPE_CODE,
}
_COUNTS = ("created_count", "updated_count", "unchanged_count")


def record_to_proto(record: Mapping[str, Any]) -> dpb.DatasetRecord:
    """A record dict as a ``DatasetRecord`` message (``TypeError``/``ValueError`` when malformed)."""
    inputs = record.get("inputs")
    if not isinstance(inputs, Mapping):
        raise TypeError(f"a record's inputs must be a dict (a JSON object), got {type(inputs).__name__}")
    msg = dpb.DatasetRecord()
    msg.inputs.SetInParent()
    fill_struct(msg.inputs, inputs)
    if "outputs" in record:
        set_value(msg.outputs, record["outputs"])
    expectations = record.get("expectations")
    if expectations is not None:
        if not isinstance(expectations, Mapping):
            raise TypeError("a record's expectations must be a dict")
        msg.expectations.SetInParent()
        fill_struct(msg.expectations, expectations)
    source = record.get("source")
    if source:
        kind = str(source.get("source_type") or "").upper().removeprefix("DATASET_RECORD_SOURCE_TYPE_")
        if kind and kind not in _SOURCE_TYPES:
            raise ValueError(f"source_type must be one of {sorted(_SOURCE_TYPES)}, got {kind!r}")
        msg.source.source_type = _SOURCE_TYPES.get(kind, dpb.DATASET_RECORD_SOURCE_TYPE_UNSPECIFIED)
        msg.source.source_data.CopyFrom(to_struct(source.get("source_data") or {}))
    for key, value in (record.get("tags") or {}).items():
        msg.tags[str(key)] = str(value)
    return msg


def _batch_request_id(request_id: str, index: int) -> str:
    """One request id per batch, derived from the caller's, so retrying the whole call is safe."""
    if not request_id:
        return ""
    return request_id if index == 0 else str(uuid.uuid5(uuid.UUID(request_id), str(index)))


class DatasetsMixin:
    datasets: EvaluationDatasetServiceStub

    def create_dataset(
        self,
        name: str,
        *,
        experiment_ids: Sequence[str] = (),
        tags: Mapping[str, str] | None = None,
        request_id: str = "",
    ) -> dict[str, Any]:
        req = pb.CreateDatasetRequest(
            name=name, experiment_ids=list(experiment_ids), tags=dict(tags or {}), request_id=request_id
        )
        return to_dict(self.datasets.CreateDataset(req))

    def get_dataset(self, dataset_id: str) -> dict[str, Any]:
        return to_dict(self.datasets.GetDataset(pb.GetDatasetRequest(dataset_id=dataset_id)))

    def search_datasets(
        self, filter: str = "", *, experiment_ids: Sequence[str] = (), order_by: Sequence[str] = (), page_size: int = 0
    ) -> Iterator[dict[str, Any]]:
        """Every matching dataset, fetching pages as the iterator advances."""
        req = pb.SearchDatasetsRequest(
            filter=filter, experiment_ids=list(experiment_ids), order_by=list(order_by), page_size=page_size
        )
        for ds in iter_pages(self.datasets.SearchDatasets, req, "datasets"):
            yield to_dict(ds)

    def delete_dataset(self, dataset_id: str) -> None:
        self.datasets.DeleteDataset(pb.DeleteDatasetRequest(dataset_id=dataset_id))

    def set_dataset_tags(self, dataset_id: str, tags: Mapping[str, str]) -> None:
        self.datasets.SetDatasetTags(pb.SetDatasetTagsRequest(dataset_id=dataset_id, tags=dict(tags)))

    def delete_dataset_tag(self, dataset_id: str, key: str) -> None:
        self.datasets.DeleteDatasetTag(pb.DeleteDatasetTagRequest(dataset_id=dataset_id, key=key))

    def add_dataset_to_experiments(self, dataset_id: str, experiment_ids: Sequence[str]) -> dict[str, Any]:
        req = pb.AddDatasetToExperimentsRequest(dataset_id=dataset_id, experiment_ids=list(experiment_ids))
        return to_dict(self.datasets.AddDatasetToExperiments(req))

    def remove_dataset_from_experiments(self, dataset_id: str, experiment_ids: Sequence[str]) -> dict[str, Any]:
        req = pb.RemoveDatasetFromExperimentsRequest(dataset_id=dataset_id, experiment_ids=list(experiment_ids))
        return to_dict(self.datasets.RemoveDatasetFromExperiments(req))

    def merge_records(
        self,
        dataset_id: str,
        records: Iterable[Mapping[str, Any]],
        *,
        batch_size: int = MERGE_BATCH_MAX,
        request_id: str = "",
    ) -> dict[str, Any]:
        """Merge ``records`` in calls of at most ``batch_size`` (≤ 10,000) records each.

        Returns the summed counts, ``results`` (one ``{"dataset_record_id", "outcome"}`` per
        record, in order) and the dataset's ``version``, ``digest`` and ``num_records`` after
        the last call. Each call is one transaction; with ``request_id`` every batch gets its
        own id derived from it, so repeating the whole call repeats nothing.
        """
        if not 0 < batch_size <= MERGE_BATCH_MAX:
            raise ValueError(f"batch_size must be 1 to {MERGE_BATCH_MAX}")
        protos = [record_to_proto(r) for r in records]
        out: dict[str, Any] = dict.fromkeys(_COUNTS, 0) | {"results": []}
        for index, start in enumerate(range(0, len(protos), batch_size)):
            req = pb.MergeRecordsRequest(
                dataset_id=dataset_id,
                records=protos[start : start + batch_size],
                request_id=_batch_request_id(request_id, index),
            )
            resp = self.datasets.MergeRecords(req)
            for key in _COUNTS:
                out[key] += getattr(resp, key)
            out["results"] += [to_dict(r) for r in resp.results]
            out.update(version=resp.version, digest=resp.digest, num_records=resp.num_records)
        return out

    def iter_records(
        self, dataset_id: str, version: int | None = None, *, page_size: int = 1000
    ) -> Iterator[dict[str, Any]]:
        """Every record, current or as it was at ``version``, in creation order, as plain dicts."""
        req = pb.ListRecordsRequest(dataset_id=dataset_id, page_size=page_size)
        if version is not None:
            req.version = version
        for rec in iter_pages(self.datasets.ListRecords, req, "records"):
            yield to_dict(rec)

    def get_record(self, dataset_id: str, dataset_record_id: str, version: int | None = None) -> dict[str, Any]:
        req = pb.GetRecordRequest(dataset_id=dataset_id, dataset_record_id=dataset_record_id)
        if version is not None:
            req.version = version
        return to_dict(self.datasets.GetRecord(req))

    def delete_records(self, dataset_id: str, dataset_record_ids: Sequence[str]) -> int:
        """Delete records by id (unknown ids are ignored); how many were deleted."""
        ids, deleted = list(dataset_record_ids), 0
        for start in range(0, len(ids), MERGE_BATCH_MAX):
            chunk = ids[start : start + MERGE_BATCH_MAX]
            deleted += self.datasets.DeleteRecords(
                pb.DeleteRecordsRequest(dataset_id=dataset_id, dataset_record_ids=chunk)
            ).deleted_count
        return deleted

    def create_records_from_traces(
        self, dataset_id: str, trace_ids: Sequence[str], *, request_id: str = ""
    ) -> dict[str, Any]:
        req = pb.CreateRecordsFromTracesRequest(dataset_id=dataset_id, trace_ids=list(trace_ids), request_id=request_id)
        return to_dict(self.datasets.CreateRecordsFromTraces(req))

    def list_dataset_versions(self, dataset_id: str, *, page_size: int = 0) -> Iterator[dict[str, Any]]:
        """The dataset's versions, newest first."""
        req = pb.ListDatasetVersionsRequest(dataset_id=dataset_id, page_size=page_size)
        for v in iter_pages(self.datasets.ListDatasetVersions, req, "versions"):
            yield to_dict(v)

    def diff_dataset_versions(
        self, dataset_id: str, from_version: int = 0, to_version: int | None = None, *, page_size: int = 0
    ) -> Iterator[dict[str, Any]]:
        """The records ADDED, REMOVED and CHANGED from ``from_version`` to ``to_version`` (default: current)."""
        req = pb.DiffDatasetVersionsRequest(dataset_id=dataset_id, from_version=from_version, page_size=page_size)
        if to_version is not None:
            req.to_version = to_version
        for change in iter_pages(self.datasets.DiffDatasetVersions, req, "changes"):
            yield to_dict(change)

    def to_pandas(self, dataset_id: str, version: int | None = None) -> Any:
        """The records as a ``pandas.DataFrame`` (one row per record; needs the ``pandas`` extra)."""
        try:
            import pandas  # type: ignore[import-not-found,import-untyped,unused-ignore]
        except ImportError:
            raise ImportError(
                "to_pandas needs pandas, which is not installed: pip install 'mlgenai-client[pandas]'"
            ) from None
        return pandas.DataFrame(list(self.iter_records(dataset_id, version)))
