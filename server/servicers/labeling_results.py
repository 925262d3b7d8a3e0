"""LabelingService: GetAgreement and SyncToDataset (SPEC §8.3–§8.4).

SyncToDataset runs in one write transaction: the session and its COMPLETED items are read,
the target dataset is locked, and all the records go through one call of the dataset merge
(``DatasetRecordWriter.merge``), so the dataset gets exactly one new version, or none when
nothing changed. Trace items are built the way CreateRecordsFromTraces builds its records
(``trace_sources`` + ``from_trace``), with the labels' consensus overriding the trace's
expectations of the same names.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import grpc

from mlgenai.client.convert import to_struct, to_value
from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as dspb, labeling_service_pb2 as pb
from server.convert.common import now_ms
from server.convert.dataset_records import RECORD_CODEC, SOURCE_TYPES_TO_PROTO, from_trace
from server.convert.datasets import check_dataset_id, merge_response
from server.convert.labeling import check_session_id
from server.validation import Violations
from store import limits
from store.dataset_domain import RecordInput, TraceSource
from store.repositories.labeling_results import LabelingResults, SyncRecord
from store.uow import Database, UnitOfWork

Ctx = grpc.ServicerContext


def _record_input(record: SyncRecord) -> RecordInput:
    """A record item's record: its current content with the labels applied."""
    origin = dpb.DatasetRecord(
        inputs=to_struct(record.inputs),
        expectations=to_struct(record.expectations),
        source=dpb.DatasetRecordSource(
            source_type=SOURCE_TYPES_TO_PROTO[record.source_type], source_data=to_struct(record.source_data)
        ),
        tags=record.tags,
    )
    if record.has_outputs:
        origin.outputs.CopyFrom(to_value(record.outputs))
    return RecordInput(
        inputs=record.inputs,
        origin=origin,
        has_outputs=record.has_outputs,
        outputs=record.outputs,
        expectations=record.expectations,
        source_type=record.source_type,
        source_data=record.source_data,
        tags=record.tags,
    )


def _record_inputs(uow: UnitOfWork, records: list[SyncRecord]) -> list[RecordInput]:
    """The merge's records, in item order; trace items as CreateRecordsFromTraces makes them."""
    trace_ids = [r.trace_id for r in records if r.trace_id]
    sources: dict[str, TraceSource] = {}
    for start in range(0, len(trace_ids), limits.DATASET_TRACES_MAX):  # as many as CreateRecordsFromTraces takes
        chunk = trace_ids[start : start + limits.DATASET_TRACES_MAX]
        sources.update((s.trace_id, s) for s in uow.dataset_records.trace_sources(chunk))
    out = []
    for record in records:
        if not record.trace_id:
            out.append(_record_input(record))
            continue
        source = sources[record.trace_id]
        rec = from_trace(replace(source, expectations={**source.expectations, **record.expectations}))
        rec.tags = record.tags
        origin: Any = rec.origin
        origin.tags.update(record.tags)
        out.append(rec)
    return out


class LabelingResultMethods:
    db: Database

    def GetAgreement(self, request: pb.GetAgreementRequest, context: Ctx) -> pb.GetAgreementResponse:
        checks = Violations()
        check_session_id(checks, request.labeling_session_id)
        checks.raise_if_any()
        found = self.db.read(lambda uow: LabelingResults(uow).agreement(request.labeling_session_id))
        response = pb.GetAgreementResponse()
        for entry in found:
            result = entry.result
            schema = response.schemas.add(
                schema_id=entry.schema.schema_id,
                name=entry.schema.name,
                statistic=result.statistic,
                items=result.items,
                raters=result.raters,
            )
            if result.value is not None:
                schema.value = result.value
            if result.observed_agreement is not None:
                schema.observed_agreement = result.observed_agreement
        return response

    def SyncToDataset(self, request: pb.SyncToDatasetRequest, context: Ctx) -> pb.SyncToDatasetResponse:
        checks = Violations()
        check_session_id(checks, request.labeling_session_id)
        if request.dataset_id:
            check_dataset_id(checks, request.dataset_id)
        checks.raise_if_any()

        def work(uow: UnitOfWork) -> pb.SyncToDatasetResponse:
            results = LabelingResults(uow)
            session = results.session(request.labeling_session_id)
            dataset_id = results.sync_target(session, request.dataset_id)
            ds = uow.datasets.lock(dataset_id)  # DATASET_NOT_FOUND before anything else is read
            records = results.sync_records(session)
            if not records:
                merge = dspb.MergeRecordsResponse(version=ds.version, digest=ds.digest, num_records=ds.num_records)
                return pb.SyncToDatasetResponse(merge=merge, items=0, disagreements=0)
            result = uow.dataset_records.merge(dataset_id, _record_inputs(uow, records), RECORD_CODEC, now_ms())
            return pb.SyncToDatasetResponse(
                merge=merge_response(result),
                items=len(records),
                disagreements=sum(r.disagreed for r in records),
            )

        return self.db.write(work)
