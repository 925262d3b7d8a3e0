"""The workloads of issue 4 (evaluation datasets): merge, re-merge, read back, with and without upkeep.

They run in this order, on one dataset per backend pass (``--only datasets`` selects them all):

* ``dataset_merge_new``: 100,000 new records in 100 MergeRecords calls of 1,000 (versions 1–100);
* ``dataset_merge_changed``: the same 100,000 with changed expectations (every record UPDATED);
* ``dataset_merge_unchanged``: the same again (every record UNCHANGED: no write, no version);
* ``dataset_list_current``: ListRecords of the 100,000 current records, pages of 1,000, twice;
* ``dataset_list_version``: the same at version 100 (every record has two row versions by then);
  before the reads the records table is ANALYZEd on PostgreSQL: what autovacuum would do
  within a minute of the merges (this machine's PostgreSQL runs with autovacuum off);
* ``dataset_merge_new_nostats``: 100,000 new records into a fresh dataset on a server started
  with ``MLGENAI_DATASET_STATS=off`` (no schema/profile upkeep): the baseline the upkeep's cost
  is measured against (compare with ``dataset_merge_new``, also into an empty dataset).

Each is a fixed amount of work (``LoadSpec.calls``) at concurrency 1, so run them once
(``--repeat 1``, the default): a repeated "new" merge would find its records already there.
``run_phase`` runs them (the runner hands it their servers). The operations find their
dataset by creating it with a ``request_id`` derived from its name: the first call creates it,
every later one gets the stored response back (one cheap call per generator job).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from typing import Any

import grpc

from bench.dataset_seed import RECORDS_PER_CALL, merge_request, merge_template
from bench.loadgen import CALL_TIMEOUT_S, SEQ_STRIDE, Call
from bench.workload import Workload
from mlgenai.v1 import evaluation_dataset_pb2 as dpb, evaluation_dataset_service_pb2 as pb
from store.engine import make_engine

SERVICE = "/mlgenai.v1.EvaluationDatasetService/"
RECORDS = 100_000
CALLS = RECORDS // RECORDS_PER_CALL
PAGE_SIZE = 1_000
READS = 2 * RECORDS // PAGE_SIZE  # pages per read workload: two walks
STATS_SWITCH = "MLGENAI_DATASET_STATS"  # store/repositories/dataset_records.py
MAIN, BARE = "bench-dataset", "bench-dataset-nostats"
NAMESPACE = uuid.UUID("5d1b7d7e-9a4c-4f0e-8f6b-2a0c6c1d9e11")
TARGET, TARGET_NOSTATS = "datasets", "datasets-nostats"  # Workload.target: run by run_phase
Record = dict[str, Any]


def _create_request(name: str) -> bytes:
    return pb.CreateDatasetRequest(name=name, request_id=str(uuid.uuid5(NAMESPACE, name))).SerializeToString()


async def _dataset_id(channel: grpc.aio.Channel, name: str) -> bytes:
    """The dataset called ``name`` of this run: created by the first call, the same one after."""
    create: Any = channel.unary_unary(SERVICE + "CreateDataset")
    raw = await create(_create_request(name), timeout=CALL_TIMEOUT_S)
    return dpb.EvaluationDataset.FromString(raw).dataset_id.encode()


@dataclass(frozen=True)
class DatasetMerge:
    """MergeRecords of batch ``seq`` (1,000 records) of ``variant`` into the dataset ``name``."""

    name: str
    variant: str
    timeout_s: float = 120.0

    def bind(self, channel: grpc.aio.Channel) -> Call:
        template = merge_template(self.variant)  # built before the window opens
        merge: Any = channel.unary_unary(SERVICE + "MergeRecords")
        known: list[bytes] = []

        async def call(caller: int, seq: int) -> object:
            if not known:
                known.append(await _dataset_id(channel, self.name))
            return await merge(merge_request(template, known[0], seq % SEQ_STRIDE), timeout=self.timeout_s)

        return call


@dataclass(frozen=True)
class RecordPages:
    """ListRecords of the dataset ``name``, one page of 1,000 per call, walking it from the start
    again after the last page; current, or ``at_version``: the first version with ``RECORDS``
    records (the end of ``dataset_merge_new``)."""

    name: str
    at_version: bool = False
    timeout_s: float = 60.0

    def bind(self, channel: grpc.aio.Channel) -> Call:
        page: Any = channel.unary_unary(SERVICE + "ListRecords")
        first: list[pb.ListRecordsRequest] = []
        tokens: dict[int, str] = {}

        async def call(caller: int, seq: int) -> object:
            if not first:
                first.append(await self._first_page(channel))
            req = pb.ListRecordsRequest()
            req.CopyFrom(first[0])
            req.page_token = tokens.get(caller, "")
            resp = pb.ListRecordsResponse.FromString(await page(req.SerializeToString(), timeout=self.timeout_s))
            if len(resp.records) != PAGE_SIZE:
                raise ValueError(f"a page of {len(resp.records)} records")  # counted as an error
            tokens[caller] = resp.next_page_token
            return resp

        return call

    async def _first_page(self, channel: grpc.aio.Channel) -> pb.ListRecordsRequest:
        dataset_id = (await _dataset_id(channel, self.name)).decode()
        req = pb.ListRecordsRequest(dataset_id=dataset_id, page_size=PAGE_SIZE)
        if self.at_version:
            listed: Any = channel.unary_unary(SERVICE + "ListDatasetVersions")
            token, full = "", []
            while True:
                ask = pb.ListDatasetVersionsRequest(dataset_id=dataset_id, page_size=1000, page_token=token)
                got = pb.ListDatasetVersionsResponse.FromString(await listed(ask.SerializeToString()))
                full += [v.version for v in got.versions if v.num_records == RECORDS]
                if not (token := got.next_page_token):
                    break
            req.version = min(full, default=0)
        return req


def _check_dataset(target: str, name: str) -> Record:
    """Before a read workload: the dataset must hold the records the merges wrote."""
    with grpc.insecure_channel(target) as channel:
        create: Any = channel.unary_unary(SERVICE + "CreateDataset")
        dataset_id = dpb.EvaluationDataset.FromString(create(_create_request(name), timeout=CALL_TIMEOUT_S)).dataset_id
        get: Any = channel.unary_unary(SERVICE + "GetDataset")
        raw = get(pb.GetDatasetRequest(dataset_id=dataset_id).SerializeToString(), timeout=CALL_TIMEOUT_S)
    found = dpb.EvaluationDataset.FromString(raw)
    out: Record = {"records_in_dataset": found.num_records, "dataset_version": found.version}
    if found.num_records != RECORDS:
        out["problem"] = f"the dataset holds {found.num_records} records, not {RECORDS}: run the whole group"
    return out


@contextmanager
def stats_off() -> Iterator[None]:
    """Servers started inside skip the schema/profile upkeep (the benchmark switch)."""
    before = os.environ.get(STATS_SWITCH)
    os.environ[STATS_SWITCH] = "off"
    try:
        yield
    finally:
        if before is None:
            del os.environ[STATS_SWITCH]
        else:
            os.environ[STATS_SWITCH] = before


def analyze(database_url: str) -> None:
    """ANALYZE the records table on PostgreSQL (what autovacuum would do after the merges)."""
    engine = make_engine(database_url)
    try:
        if engine.dialect.name == "postgresql":
            with engine.connect() as conn:
                conn.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql(
                    "ANALYZE evaluation_dataset_records"
                )
    finally:
        engine.dispose()


def run_phase(
    database_url: str,
    workloads: Sequence[Workload],
    server: Callable[[], AbstractContextManager[Any]],
    measure: Callable[[Any, Workload], None],
) -> None:
    """Run the selected dataset workloads in order: on ``server()`` (one process), then the
    ``nostats`` one on a server started with the upkeep switched off. ``measure(server, w)``
    measures one workload (the runner's ``_measure``, emitting the record)."""
    main = [w for w in workloads if w.target == TARGET]
    bare = [w for w in workloads if w.target == TARGET_NOSTATS]
    if main:
        with server() as srv:
            analyzed = False
            for w in main:
                if w.rpc == "ListRecords" and not analyzed:
                    analyze(database_url)
                    analyzed = True
                measure(srv, w)
    if bare:
        with stats_off(), server() as srv:
            for w in bare:
                measure(srv, w)


def dataset_workloads() -> list[Workload]:
    """The issue 4 workloads, in the order they must run (see the module docstring)."""
    merges = f"{CALLS} calls × {RECORDS_PER_CALL:,} records like seed 003's"
    reads = f"pages of {PAGE_SIZE:,}, 2 walks over {RECORDS:,}"

    def workload(name: str, rpc: str, note: str, op: Any, per_call: int, calls: int, **kw: Any) -> Workload:
        where = kw.pop("target", TARGET)
        return Workload(
            name, rpc, note, op, 1, target=where, group="datasets", calls=calls, per_call=per_call, item="records", **kw
        )

    def check(target: str) -> Record:
        return _check_dataset(target, MAIN)

    new, changed, same = (f"{what}, {merges}" for what in ("new", "changed expectations", "unchanged"))
    return [
        workload("dataset_merge_new", "MergeRecords", new, DatasetMerge(MAIN, "v1"), 1000, CALLS),
        workload("dataset_merge_changed", "MergeRecords", changed, DatasetMerge(MAIN, "v2"), 1000, CALLS),
        workload("dataset_merge_unchanged", "MergeRecords", same, DatasetMerge(MAIN, "v2"), 1000, CALLS),
        workload("dataset_list_current", "ListRecords", f"current, {reads}", RecordPages(MAIN), PAGE_SIZE, READS,
                 probe=check),
        workload("dataset_list_version", "ListRecords", f"at version 100, {reads}", RecordPages(MAIN, True),
                 PAGE_SIZE, READS, probe=check),
        workload("dataset_merge_new_nostats", "MergeRecords", f"new, no schema/profile upkeep, {merges}",
                 DatasetMerge(BARE, "v1"), 1000, CALLS, target=TARGET_NOSTATS),
    ]  # fmt: skip
