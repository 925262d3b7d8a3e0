"""EvaluationDatasetService (SPEC §5)."""

from __future__ import annotations

import grpc

from mlgenai.v1 import (
    evaluation_dataset_pb2 as dpb,
    evaluation_dataset_service_pb2 as pb,
    evaluation_dataset_service_pb2_grpc as pb_grpc,
)
from server.convert.common import now_ms
from server.convert.dataset_records import RECORD_CODEC, from_trace, to_input
from server.convert.datasets import (
    RECORD_ID,
    TRACE_ID,
    change_to_proto,
    check_count,
    check_dataset_id,
    check_experiment_ids,
    check_ids,
    check_version,
    merge_response,
    records_response,
    to_proto,
    version_to_proto,
)
from server.idempotency import idempotent_write
from server.validation import Violations
from store import limits
from store.domain import SearchQuery
from store.query.keyset import page_size_of
from store.uow import Database, UnitOfWork

Ctx = grpc.ServicerContext
Dataset = dpb.EvaluationDataset


def _checked(dataset_id: str) -> Violations:
    checks = Violations()
    check_dataset_id(checks, dataset_id)
    return checks


def _version(request: object, field: str, checks: Violations) -> int | None:
    if not request.HasField(field):  # type: ignore[attr-defined]
        return None
    value: int = getattr(request, field)
    check_version(checks, field, value)
    return value


class DatasetServicer(pb_grpc.EvaluationDatasetServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def CreateDataset(self, request: pb.CreateDatasetRequest, context: Ctx) -> Dataset:
        checks = Violations()
        checks.name("name", request.name)
        checks.tags("tags", request.tags)
        check_experiment_ids(checks, request.experiment_ids, required=False)
        checks.request_id(request.request_id)
        checks.raise_if_any()
        ids, tags = list(request.experiment_ids), dict(request.tags)
        work = lambda uow: to_proto(uow.datasets.create(request.name, ids, tags, now_ms()))  # noqa: E731
        return idempotent_write(self.db, "CreateDataset", request, Dataset, work)

    def GetDataset(self, request: pb.GetDatasetRequest, context: Ctx) -> Dataset:
        _checked(request.dataset_id).raise_if_any()
        return to_proto(self.db.read(lambda uow: uow.datasets.get(request.dataset_id)))

    def SearchDatasets(self, request: pb.SearchDatasetsRequest, context: Ctx) -> pb.SearchDatasetsResponse:
        checks = Violations()
        check_experiment_ids(checks, request.experiment_ids, required=False)
        checks.raise_if_any()
        query = SearchQuery(
            request.filter, tuple(request.order_by), page_size_of(request.page_size), request.page_token
        )
        page = self.db.read(lambda uow: uow.datasets.search(list(request.experiment_ids), query))
        return pb.SearchDatasetsResponse(
            datasets=[to_proto(d) for d in page.items], next_page_token=page.next_page_token
        )

    def DeleteDataset(self, request: pb.DeleteDatasetRequest, context: Ctx) -> pb.DeleteDatasetResponse:
        _checked(request.dataset_id).raise_if_any()
        self.db.write(lambda uow: uow.datasets.delete(request.dataset_id))
        return pb.DeleteDatasetResponse()

    def SetDatasetTags(self, request: pb.SetDatasetTagsRequest, context: Ctx) -> pb.SetDatasetTagsResponse:
        checks = _checked(request.dataset_id)
        check_count(checks, "tags", len(request.tags), 1, limits.TAGS_PER_ENTITY_MAX)
        checks.tags("tags", request.tags)
        checks.raise_if_any()
        tags = dict(request.tags)
        self.db.write(lambda uow: uow.datasets.set_tags(request.dataset_id, tags, now_ms()))
        return pb.SetDatasetTagsResponse()

    def DeleteDatasetTag(self, request: pb.DeleteDatasetTagRequest, context: Ctx) -> pb.DeleteDatasetTagResponse:
        checks = _checked(request.dataset_id)
        checks.text("key", request.key, max_len=limits.TAG_KEY_MAX, required=True)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.datasets.delete_tag(request.dataset_id, request.key, now_ms()))
        return pb.DeleteDatasetTagResponse()

    def MergeRecords(self, request: pb.MergeRecordsRequest, context: Ctx) -> pb.MergeRecordsResponse:
        checks = _checked(request.dataset_id)
        check_count(checks, "records", len(request.records), 1, limits.MERGE_RECORDS_MAX)
        checks.request_id(request.request_id)
        checks.raise_if_any()  # the count first: 100,000 bad records are not converted
        inputs = [to_input(r, checks, f"records[{i}]") for i, r in enumerate(request.records)]
        checks.raise_if_any()
        records = [r for r in inputs if r is not None]

        def work(uow: UnitOfWork) -> pb.MergeRecordsResponse:
            return merge_response(uow.dataset_records.merge(request.dataset_id, records, RECORD_CODEC, now_ms()))

        return idempotent_write(self.db, "MergeRecords", request, pb.MergeRecordsResponse, work)

    def ListRecords(self, request: pb.ListRecordsRequest, context: Ctx) -> pb.ListRecordsResponse:
        checks = _checked(request.dataset_id)
        version = _version(request, "version", checks)
        checks.raise_if_any()
        query = SearchQuery(page_size=page_size_of(request.page_size), page_token=request.page_token)
        page = self.db.read(lambda uow: uow.dataset_reads.list_records(request.dataset_id, version, query))
        return records_response(page.items, page.next_page_token)

    def GetRecord(self, request: pb.GetRecordRequest, context: Ctx) -> dpb.DatasetRecord:
        checks = _checked(request.dataset_id)
        if not RECORD_ID.fullmatch(request.dataset_record_id):
            checks.add("dataset_record_id", "a dataset record id ('dr-' + 32 lowercase hex characters)")
        version = _version(request, "version", checks)
        checks.raise_if_any()
        blob = self.db.read(
            lambda uow: uow.dataset_reads.get_record(request.dataset_id, request.dataset_record_id, version)
        )
        return dpb.DatasetRecord.FromString(blob)

    def DeleteRecords(self, request: pb.DeleteRecordsRequest, context: Ctx) -> pb.DeleteRecordsResponse:
        checks = _checked(request.dataset_id)
        ids = list(request.dataset_record_ids)
        check_count(checks, "dataset_record_ids", len(ids), 1, limits.MERGE_RECORDS_MAX)
        check_ids(checks, "dataset_record_ids", ids, RECORD_ID, "a dataset record id ('dr-' + 32 hex characters)")
        checks.request_id(request.request_id)
        checks.raise_if_any()

        def work(uow: UnitOfWork) -> pb.DeleteRecordsResponse:
            done = uow.dataset_records.delete(request.dataset_id, ids, now_ms())
            return pb.DeleteRecordsResponse(deleted_count=done.deleted, version=done.version)

        return idempotent_write(self.db, "DeleteRecords", request, pb.DeleteRecordsResponse, work)

    def AddDatasetToExperiments(self, request: pb.AddDatasetToExperimentsRequest, context: Ctx) -> Dataset:
        checks = _checked(request.dataset_id)
        check_experiment_ids(checks, request.experiment_ids, required=True)
        checks.raise_if_any()
        ids = list(request.experiment_ids)
        return to_proto(self.db.write(lambda uow: uow.datasets.add_experiments(request.dataset_id, ids, now_ms())))

    def RemoveDatasetFromExperiments(self, request: pb.RemoveDatasetFromExperimentsRequest, context: Ctx) -> Dataset:
        checks = _checked(request.dataset_id)
        check_experiment_ids(checks, request.experiment_ids, required=True)
        checks.raise_if_any()
        ids = list(request.experiment_ids)
        return to_proto(self.db.write(lambda uow: uow.datasets.remove_experiments(request.dataset_id, ids, now_ms())))

    def ListDatasetVersions(
        self, request: pb.ListDatasetVersionsRequest, context: Ctx
    ) -> pb.ListDatasetVersionsResponse:
        _checked(request.dataset_id).raise_if_any()
        query = SearchQuery(page_size=page_size_of(request.page_size), page_token=request.page_token)
        page = self.db.read(lambda uow: uow.dataset_reads.list_versions(request.dataset_id, query))
        versions = [version_to_proto(v) for v in page.items]
        return pb.ListDatasetVersionsResponse(versions=versions, next_page_token=page.next_page_token)

    def DiffDatasetVersions(
        self, request: pb.DiffDatasetVersionsRequest, context: Ctx
    ) -> pb.DiffDatasetVersionsResponse:
        checks = _checked(request.dataset_id)
        check_version(checks, "from_version", request.from_version)
        to_version = _version(request, "to_version", checks)
        checks.raise_if_any()
        size = page_size_of(request.page_size)
        diff = self.db.read(
            lambda uow: uow.dataset_reads.diff(
                request.dataset_id, request.from_version, to_version, size, request.page_token
            )
        )
        return pb.DiffDatasetVersionsResponse(
            changes=[change_to_proto(c) for c in diff.changes],
            next_page_token=diff.next_page_token,
            from_version=diff.from_version,
            to_version=diff.to_version,
        )

    def CreateRecordsFromTraces(
        self, request: pb.CreateRecordsFromTracesRequest, context: Ctx
    ) -> pb.MergeRecordsResponse:
        checks = _checked(request.dataset_id)
        trace_ids = list(request.trace_ids)
        check_count(checks, "trace_ids", len(trace_ids), 1, limits.DATASET_TRACES_MAX)
        check_ids(checks, "trace_ids", trace_ids, TRACE_ID, "a trace id ('tr-' + 32 lowercase hex characters)")
        checks.request_id(request.request_id)
        checks.raise_if_any()

        def work(uow: UnitOfWork) -> pb.MergeRecordsResponse:
            uow.datasets.lock(request.dataset_id)  # DATASET_NOT_FOUND before TRACE_NOT_FOUND
            records = [from_trace(s) for s in uow.dataset_records.trace_sources(trace_ids)]
            return merge_response(uow.dataset_records.merge(request.dataset_id, records, RECORD_CODEC, now_ms()))

        return idempotent_write(self.db, "CreateRecordsFromTraces", request, pb.MergeRecordsResponse, work)
