"""The workloads, in the order they run for each backend.

A workload names an operation (``bench.ops``), a concurrency and which server it runs against:
``server`` (ours, one process), ``workers2`` (ours with ``--workers 2``) or ``echo`` (the bare
grpcio ceiling). Adding one is one more ``Workload(...)`` line in ``workloads()``; ``--only``
selects them by name, glob or group (``create`` = ``create_*``), and ``bench.targets`` reads the results by name.
The trace, OTLP and assessment workloads (issue 3) are in ``bench.trace_suite``, the dataset
workloads (issue 4, group ``datasets``) in ``bench.dataset_ops``.
"""

from __future__ import annotations

import fnmatch
import secrets
from collections.abc import Sequence

from bench.analytics_suite import analytics_workloads
from bench.databases import SEED_PREFIX, SEED_TEAMS
from bench.dataset_ops import dataset_workloads
from bench.echo import METHOD as ECHO_METHOD
from bench.labeling_suite import labeling_workloads
from bench.ops import CreateExperiments, Cycle, Fixed, PagedSearch, Unary
from bench.trace_suite import TraceContext, trace_workloads
from bench.workload import Workload
from mlgenai.v1 import common_pb2, experiment_pb2, experiment_service_pb2 as pb

GET_TARGET = pb.CreateExperimentRequest(
    name="bench-get-target",
    tags={"team": "search", "env": "prod", "owner": "alice", "model": "gpt-x", "stage": "eval"},
)
SERVER_TARGETS = ("server", "workers2")


def expected_get_response_bytes(experiment_id: str = "10002") -> int:
    """Size of GetExperiment's answer for GET_TARGET (what the echo server sends back)."""
    exp = experiment_pb2.Experiment(
        experiment_id=experiment_id,
        name=GET_TARGET.name,
        artifact_location=f"mlflow-artifacts:/{experiment_id}",
        lifecycle_stage=common_pb2.LIFECYCLE_STAGE_ACTIVE,
        tags=GET_TARGET.tags,
    )
    exp.create_time.FromMilliseconds(1_760_000_000_123)
    exp.update_time.FromMilliseconds(1_760_000_000_123)
    return exp.ByteSize()


def _tag_filters(template: str) -> tuple[bytes, ...]:
    return tuple(
        pb.SearchExperimentsRequest(filter=template.format(team=f"team-{t:03d}"), page_size=100).SerializeToString()
        for t in range(SEED_TEAMS)
    )


TAG_FILTER = "tags.team = '{team}'"
NAME_TAG_FILTER = f"name LIKE '{SEED_PREFIX}01%' AND tags.team = '{{team}}'"


def workloads(get_target_id: str, channels_per_16: int = 1, traces: TraceContext | None = None) -> list[Workload]:
    """Every workload of one backend pass. ``channels_per_16``: connections per 16 callers;
    ``traces``: the prepared trace fixtures (placeholders when None)."""

    def chans(c: int) -> int:
        return max(1, c * channels_per_16 // 16)

    get = Unary("GetExperiment", Fixed(pb.GetExperimentRequest(experiment_id=get_target_id).SerializeToString()))
    echo = Unary(ECHO_METHOD, Fixed(pb.GetExperimentRequest(experiment_id=get_target_id).SerializeToString()))
    run = secrets.token_hex(3)  # unique names across repeated runs on one database
    out = [Workload(f"echo_c{c}", "Echo (bare grpcio)", "ceiling", echo, c, chans(c), "echo") for c in (1, 16, 64)]
    out += [Workload(f"get_c{c}", "GetExperiment", "5 tags", get, c, chans(c)) for c in (1, 16, 64)]
    out += [
        Workload(
            "search_tag",
            "SearchExperiments",
            "tag = ~1% of 10k, page 100",
            Unary("SearchExperiments", Cycle(_tag_filters(TAG_FILTER))),
            1,
            needs_seed=True,
        ),
        Workload(
            "search_name_tag",
            "SearchExperiments",
            "name LIKE + tag, page 100",
            Unary("SearchExperiments", Cycle(_tag_filters(NAME_TAG_FILTER))),
            1,
            needs_seed=True,
        ),
        Workload(
            "search_scan",
            "SearchExperiments",
            "read all 10k, page 1000",
            PagedSearch(page_size=1000),
            1,
            needs_seed=True,
            min_duration_s=2.0,
        ),
    ]
    out += [
        Workload("get_workers1_c64", "GetExperiment", "--workers 1, 16 conns", get, 64, 16, "server"),
        Workload("get_workers2_c64", "GetExperiment", "--workers 2, 16 conns", get, 64, 16, "workers2"),
    ]
    for rid in (True, False):
        note, suffix = ("request_id", "") if rid else ("no request_id", "_norid")
        out += [
            Workload(
                f"create{suffix}_c{c}",
                "CreateExperiment",
                note,
                Unary("CreateExperiment", CreateExperiments(f"bench-{run}{suffix}-c{c}", request_id=rid)),
                c,
                chans(c),
            )
            for c in (1, 16)
        ]
    ctx = traces or TraceContext()
    return (
        out + trace_workloads(ctx, chans(16)) + analytics_workloads(ctx) + labeling_workloads(ctx) + dataset_workloads()
    )


def _matches(w: Workload, pattern: str) -> bool:
    """A name, a glob, a group (``get``: the get_* of issue 2; ``traces``, ``otlp``, ``assessments``),
    or a longer name prefix (``create_norid``)."""
    if fnmatch.fnmatch(w.name, pattern) or pattern == w.group_name:
        return True
    return "_" in pattern and w.name.startswith(pattern + "_")


def select(all_workloads: Sequence[Workload], patterns: Sequence[str]) -> list[Workload]:
    """Workloads matching one of ``patterns`` (see ``_matches``); all when empty."""
    if not patterns:
        return list(all_workloads)
    chosen = [w for w in all_workloads if any(_matches(w, p) for p in patterns)]
    names = {w.name for w in chosen}
    if "get_c16" in names and "echo_c16" not in names:  # the ratio needs its ceiling
        chosen = [w for w in all_workloads if w.name == "echo_c16" or w.name in names]
    return chosen


def names(get_target_id: str = "1") -> list[str]:
    return [w.name for w in workloads(get_target_id)]
