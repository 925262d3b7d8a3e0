"""TraceService (SPEC §3)."""

from __future__ import annotations

import re

import grpc

from mlgenai.v1 import trace_pb2, trace_service_pb2 as pb, trace_service_pb2_grpc
from server.convert.common import now_ms
from server.convert.datasets import RECORD_ID
from server.convert.ids import check_run_id
from server.convert.spans import check_trace_id, plain_record, read_log_spans, to_record
from server.convert.traces import STATES, info_to_proto, trace_bytes
from server.preserialized import repeated
from server.registration import raw_request
from server.validation import Violations
from store import limits
from store.domain import TRACE_IN_PROGRESS, SearchQuery, TraceStart
from store.query.keyset import page_size_of
from store.spans import PROMOTED_METADATA
from store.uow import Database, UnitOfWork

Ctx = grpc.ServicerContext
EXPERIMENT_ID = re.compile(r"[0-9]{1,19}")


def _ms(ts: object) -> int:
    return int(ts.ToMilliseconds())  # type: ignore[attr-defined]


def _check_maps(checks: Violations, info: trace_pb2.TraceInfo) -> None:
    checks.tags("trace_info.tags", info.tags)
    if len(info.trace_metadata) > limits.TAGS_PER_ENTITY_MAX:
        checks.add("trace_info.trace_metadata", f"at most {limits.TAGS_PER_ENTITY_MAX} keys")
    for key, value in info.trace_metadata.items():
        at = f"trace_info.trace_metadata[{key[:50]}]"
        checks.tag(at, key, at, value)
        if key in PROMOTED_METADATA:
            checks.text(at, value, max_len=limits.PROMOTED_MAX)


def _check_experiment_id(checks: Violations, field: str, experiment_id: str) -> None:
    if not experiment_id:
        checks.add(field, "required")
    elif not EXPERIMENT_ID.fullmatch(experiment_id) or int(experiment_id) > limits.ID_INT_MAX:
        checks.add(field, f"{experiment_id[:40]!r} is not an experiment id (a decimal integer)")


def _start(request: pb.StartTraceRequest) -> TraceStart:
    info = request.trace_info
    checks = Violations()
    check_trace_id(checks, "trace_info.trace_id", info.trace_id)
    _check_experiment_id(checks, "trace_info.experiment_id", info.experiment_id)
    checks.text("trace_info.client_request_id", info.client_request_id, max_len=limits.PROMOTED_MAX)
    checks.text("trace_info.request_preview", info.request_preview, max_len=1000)
    checks.text("trace_info.response_preview", info.response_preview, max_len=1000)
    if info.state not in STATES and info.state != trace_pb2.TRACE_STATE_UNSPECIFIED:
        checks.add("trace_info.state", "OK, ERROR or IN_PROGRESS")
    if info.HasField("execution_duration") and info.execution_duration.ToMilliseconds() < 0:
        checks.add("trace_info.execution_duration", "must not be negative")
    _check_maps(checks, info)
    checks.raise_if_any()
    return TraceStart(
        trace_id=info.trace_id,
        experiment_id=info.experiment_id,
        client_request_id=info.client_request_id or None,
        request_time_ms=_ms(info.request_time) if info.HasField("request_time") else None,
        execution_duration_ms=info.execution_duration.ToMilliseconds() if info.HasField("execution_duration") else None,
        state=STATES.get(info.state),
        request_preview=info.request_preview or None,
        response_preview=info.response_preview or None,
        metadata=dict(info.trace_metadata),
        tags=dict(info.tags),
    )


class TraceServicer(trace_service_pb2_grpc.TraceServiceServicer):
    def __init__(self, db: Database) -> None:
        self.db = db

    def StartTrace(self, request: pb.StartTraceRequest, context: Ctx) -> trace_pb2.TraceInfo:
        start = _start(request)

        def tx(uow: UnitOfWork) -> trace_pb2.TraceInfo:
            uow.trace_mutations.start(start, now_ms())
            return info_to_proto(uow.trace_reads.info(start.trace_id))

        return self.db.write(tx)

    @raw_request  # read by read_log_spans (server/convert/spans.py)
    def LogSpans(self, request: bytes, context: Ctx) -> pb.LogSpansResponse:  # type: ignore[override]
        experiment_id, sent = read_log_spans(request)
        checks = Violations()
        if not 0 < len(sent) <= limits.SPANS_PER_CALL_MAX:
            checks.add("spans", f"1 to {limits.SPANS_PER_CALL_MAX} spans per call (got {len(sent)})")
        records = [
            plain_record(s, checks, f"spans[{i}]") if type(s) is tuple else to_record(s, checks, f"spans[{i}]")  # type: ignore[arg-type]
            for i, s in enumerate(sent)
        ]
        checks.raise_if_any()
        spans = [r for r in records if r is not None]
        logged = self.db.write(lambda uow: uow.traces.log_spans(experiment_id, spans, now_ms()))
        return pb.LogSpansResponse(span_count=len({(s.trace_id, s.span_id) for s in spans}), trace_ids=logged.trace_ids)

    def EndTrace(self, request: pb.EndTraceRequest, context: Ctx) -> trace_pb2.TraceInfo:
        checks = Violations()
        check_trace_id(checks, "trace_id", request.trace_id)
        state = STATES.get(request.state)
        if state is None or state == TRACE_IN_PROGRESS:
            checks.add("state", "OK or ERROR")
        checks.text("response_preview", request.response_preview, max_len=1000)
        checks.tags("tags", request.tags)
        checks.raise_if_any()
        end_ms = _ms(request.end_time) if request.HasField("end_time") else None
        preview = request.response_preview or None

        def tx(uow: UnitOfWork) -> trace_pb2.TraceInfo:
            uow.trace_mutations.end(request.trace_id, state or "", end_ms, preview, dict(request.tags), now_ms())
            return info_to_proto(uow.trace_reads.info(request.trace_id))

        return self.db.write(tx)

    # GetTrace and BatchGetTraces answer with the serialized response (server/preserialized.py).
    def GetTrace(self, request: pb.GetTraceRequest, context: Ctx) -> bytes:  # type: ignore[override]
        checks = Violations()
        check_trace_id(checks, "trace_id", request.trace_id)
        checks.raise_if_any()
        with_spans = not request.HasField("include_spans") or request.include_spans

        def read(uow: UnitOfWork) -> bytes:
            info = uow.trace_reads.info(request.trace_id)
            return trace_bytes(info, uow.trace_reads.spans(request.trace_id) if with_spans else None)

        return self.db.read(read)

    def BatchGetTraces(self, request: pb.BatchGetTracesRequest, context: Ctx) -> bytes:  # type: ignore[override]
        checks = Violations()
        if not 0 < len(request.trace_ids) <= limits.BATCH_GET_TRACES_MAX:
            checks.add("trace_ids", f"1 to {limits.BATCH_GET_TRACES_MAX} ids")
        for i, trace_id in enumerate(request.trace_ids):
            check_trace_id(checks, f"trace_ids[{i}]", trace_id)
        checks.raise_if_any()
        with_spans = not request.HasField("include_spans") or request.include_spans
        ids = list(dict.fromkeys(request.trace_ids))

        def read(uow: UnitOfWork) -> bytes:
            infos = uow.trace_reads.infos(ids)
            spans = uow.trace_reads.spans_of([i.trace_id for i in infos]) if with_spans else {}
            return repeated(1, (trace_bytes(i, spans.get(i.trace_id)) for i in infos))

        return self.db.read(read)

    def ListSpans(self, request: pb.ListSpansRequest, context: Ctx) -> pb.ListSpansResponse:
        checks = Violations()
        check_trace_id(checks, "trace_id", request.trace_id)
        checks.raise_if_any()
        query = SearchQuery(page_size=page_size_of(request.page_size), page_token=request.page_token)
        page = self.db.read(lambda uow: uow.trace_reads.list_spans(request.trace_id, query))
        response = pb.ListSpansResponse(next_page_token=page.next_page_token)
        for blob in page.items:
            response.spans.add().MergeFromString(blob)
        return response

    def SearchTraces(self, request: pb.SearchTracesRequest, context: Ctx) -> pb.SearchTracesResponse:
        checks = Violations()
        if not 0 < len(request.experiment_ids) <= limits.SEARCH_EXPERIMENTS_MAX:
            checks.add("experiment_ids", f"1 to {limits.SEARCH_EXPERIMENTS_MAX} experiment ids")
        checks.raise_if_any()
        query = SearchQuery(
            filter=request.filter,
            order_by=tuple(request.order_by),
            page_size=page_size_of(request.page_size),
            page_token=request.page_token,
        )
        page = self.db.read(lambda uow: uow.trace_reads.search(list(request.experiment_ids), query))
        return pb.SearchTracesResponse(
            traces=[info_to_proto(i) for i in page.items], next_page_token=page.next_page_token
        )

    def SetTraceTag(self, request: pb.SetTraceTagRequest, context: Ctx) -> pb.SetTraceTagResponse:
        checks = Violations()
        check_trace_id(checks, "trace_id", request.trace_id)
        checks.tag("key", request.key, "value", request.value)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.trace_mutations.set_tag(request.trace_id, request.key, request.value, now_ms()))
        return pb.SetTraceTagResponse()

    def DeleteTraceTag(self, request: pb.DeleteTraceTagRequest, context: Ctx) -> pb.DeleteTraceTagResponse:
        checks = Violations()
        check_trace_id(checks, "trace_id", request.trace_id)
        checks.text("key", request.key, max_len=limits.TAG_KEY_MAX, required=True)
        checks.raise_if_any()
        self.db.write(lambda uow: uow.trace_mutations.delete_tag(request.trace_id, request.key, now_ms()))
        return pb.DeleteTraceTagResponse()

    def DeleteTraces(self, request: pb.DeleteTracesRequest, context: Ctx) -> pb.DeleteTracesResponse:
        checks = Violations()
        _check_experiment_id(checks, "experiment_id", request.experiment_id)
        by_time = request.HasField("max_request_time")
        if by_time == bool(request.trace_ids):
            checks.add("trace_ids", "give either trace_ids or max_request_time (exactly one)")
        if request.max_traces and not by_time:
            checks.add("max_traces", "only with max_request_time")
        if len(request.trace_ids) > 1000:
            checks.add("trace_ids", "at most 1,000 ids")
        for i, trace_id in enumerate(request.trace_ids):
            check_trace_id(checks, f"trace_ids[{i}]", trace_id)
        if not 0 <= request.max_traces <= limits.DELETE_TRACES_MAX:
            checks.add("max_traces", f"0 (the default, {limits.DELETE_TRACES_MAX}) to {limits.DELETE_TRACES_MAX}")
        checks.raise_if_any()
        before = _ms(request.max_request_time) if by_time else None
        cap = request.max_traces or limits.DELETE_TRACES_MAX
        count = self.db.write(
            lambda uow: uow.trace_mutations.delete(request.experiment_id, list(request.trace_ids), before, cap)
        )
        return pb.DeleteTracesResponse(deleted_count=count)

    def LinkTracesToRun(self, request: pb.LinkTracesToRunRequest, context: Ctx) -> pb.LinkTracesToRunResponse:
        checks = Violations()
        check_run_id(checks, "run_id", request.run_id)
        if not 0 < len(request.trace_ids) <= limits.LINK_TRACES_MAX:
            checks.add("trace_ids", f"1 to {limits.LINK_TRACES_MAX} trace ids (got {len(request.trace_ids)})")
        seen: set[str] = set()
        for i, trace_id in enumerate(request.trace_ids[: limits.LINK_TRACES_MAX]):
            check_trace_id(checks, f"trace_ids[{i}]", trace_id)
            if trace_id in seen:
                checks.add(f"trace_ids[{i}]", f"{trace_id[:50]!r} is given more than once")
            seen.add(trace_id)
        for trace_id, record_id in request.dataset_record_ids.items():
            at = f"dataset_record_ids[{trace_id[:50]}]"
            if trace_id not in seen:
                checks.add(at, "the trace is not in trace_ids")
            if not RECORD_ID.fullmatch(record_id):
                checks.add(at, f"{record_id[:50]!r} is not a dataset record id ('dr-' + 32 hex)")
        checks.raise_if_any()
        links = {t: request.dataset_record_ids.get(t) for t in request.trace_ids}
        self.db.write(lambda uow: uow.runs.link_traces(request.run_id, links, now_ms()))
        return pb.LinkTracesToRunResponse()
