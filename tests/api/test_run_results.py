"""GetRunResults and CompareRuns (SPEC §7) against a brute-force Python computation, on both
databases, plus their bad input."""

from __future__ import annotations

import math
import random
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import grpc
import pytest
from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.struct_pb2 import Value

from mlgenai.client import Client, assessment, new_trace_id
from mlgenai.v1 import (
    analytics_service_pb2 as pb,
    assessment_pb2 as apb,
    assessment_service_pb2 as aspb,
    evaluation_run_pb2 as rpb,
    evaluation_run_service_pb2 as rs,
    trace_service_pb2 as tpb,
)
from tests.helpers import expect_error

REQUEST_ID = "mlflow.eval.requestId"


def struct_value(number: float) -> Value:
    return Value(number_value=number)


def percentile(values: Sequence[float], p: float) -> float:
    """Linear interpolation between the closest ranks (PostgreSQL's percentile_cont)."""
    ordered = sorted(values)
    position = p * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (position - low) * (ordered[high] - ordered[low])


def numeric(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str) and value.lower() in ("yes", "no"):
        return 1.0 if value.lower() == "yes" else 0.0
    return None


def passed(value: Any) -> float | None:
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, str) and value.lower() in ("yes", "no"):
        return 1.0 if value.lower() == "yes" else 0.0
    return None


def create_run(client: Client, experiment_id: str, name: str = "") -> str:
    return client.runs.CreateRun(rs.CreateRunRequest(experiment_id=experiment_id, name=name)).run_id


def close(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a is None and b is None
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9)


@dataclass
class Feedback:
    trace_id: str
    name: str
    value: Any
    run_id: str
    error: bool = False
    valid: bool = True
    assessment_id: str = ""


@dataclass
class World:
    experiment_id: str
    runs: list[str]
    feedback: list[Feedback] = field(default_factory=list)
    # (run, trace) -> pair key given at link time; trace -> request id tag
    records: dict[tuple[str, str], str] = field(default_factory=dict)
    request_ids: dict[str, str] = field(default_factory=dict)
    # overriding assessment id -> the run feedback it made invalid
    overrides: dict[str, Feedback] = field(default_factory=dict)


VALUES: list[Any] = [0.0, 0.25, 1, 3.5, -2, True, False, "yes", "No", "YES", "maybe", [1, 2], {"a": 1}]


def build_world(client: Client, seed: int, runs: int = 3, traces_per_run: int = 14) -> World:
    rng = random.Random(seed)
    exp = client.create_experiment(f"results-{seed}-{rng.random()}")["experiment_id"]
    world = World(exp, [create_run(client, exp, f"run{i}") for i in range(runs)])
    keys = [f"dr-{i:032x}" for i in range(8)]
    for run in world.runs:
        linked: dict[str, str] = {}
        batch: list[tuple[Any, Feedback | None]] = []
        for _ in range(traces_per_run):
            trace_id = new_trace_id()
            tags = {}
            how = rng.random()
            if how < 0.45:
                linked[trace_id] = rng.choice(keys)
            elif how < 0.8:
                tags[REQUEST_ID] = f"req-{rng.randrange(8)}"
                world.request_ids[trace_id] = tags[REQUEST_ID]
            else:
                linked[trace_id] = ""  # linked without a record and no tag: unpaired
            client.start_trace(exp, trace_id, tags=tags)
            for name in rng.sample(["accuracy", "safety", "tone"], rng.randint(1, 3)):
                for _ in range(rng.randint(1, 2)):
                    if rng.random() < 0.1:
                        error = {"error_code": "X", "error_message": "m"}
                        msg = assessment(trace_id, name, run_id=run, error=error)
                        batch.append((msg, Feedback(trace_id, name, None, run, error=True)))
                    else:
                        value = rng.choice(VALUES)
                        batch.append(
                            (assessment(trace_id, name, value, run_id=run), Feedback(trace_id, name, value, run))
                        )
            # noise the results must ignore: an expectation, feedback of no run
            batch.append((assessment(trace_id, "accuracy", 0.5, kind="expectation", run_id=run), None))
            batch.append((assessment(trace_id, "accuracy", 100.0), None))
        created = client.log_assessments([msg for msg, _ in batch])
        runs_feedback = [(made, f) for made, (_, f) in zip(created, batch, strict=True) if f is not None]
        for made, f in runs_feedback:
            f.assessment_id = made["assessment_id"]
        world.feedback.extend(f for _, f in runs_feedback)
        # invalidate some of it through overrides (the overriding assessment belongs to no run)
        for made, f in rng.sample(runs_feedback, 2):
            override = client.log_feedback(made["trace_id"], made["name"], 42.0, overrides=made["assessment_id"])
            world.overrides[override["assessment_id"]] = f
            f.valid = False
        request = tpb.LinkTracesToRunRequest(
            run_id=run, trace_ids=list(linked), dataset_record_ids={t: k for t, k in linked.items() if k}
        )
        client.traces.LinkTracesToRun(request)
        for trace_id, key in linked.items():
            if key:
                world.records[(run, trace_id)] = key
    return world


def expected_results(world: World, run: str) -> dict[str, Any]:
    items = [f for f in world.feedback if f.run_id == run and f.valid]
    out: dict[str, Any] = {"trace_count": len({f.trace_id for f in items}), "names": {}}
    for name in sorted({f.name for f in items}):
        rows = [f for f in items if f.name == name]
        nums = [v for f in rows if not f.error and (v := numeric(f.value)) is not None]
        passes = [v for f in rows if not f.error and (v := passed(f.value)) is not None]
        out["names"][name] = {
            "count": len(rows),
            "numeric_count": len(nums),
            "mean": sum(nums) / len(nums) if nums else None,
            "min": min(nums) if nums else None,
            "max": max(nums) if nums else None,
            "p50": percentile(nums, 0.5) if nums else None,
            "p90": percentile(nums, 0.9) if nums else None,
            "pass_rate": sum(passes) / len(passes) if passes else None,
            "error_count": sum(1 for f in rows if f.error),
        }
    return out


def optional(msg: Any, name: str) -> float | None:
    return getattr(msg, name) if msg.HasField(name) else None


def test_run_results_match_brute_force(client: Client) -> None:
    assert_results(client, build_world(client, seed=7))


def assert_results(client: Client, world: World) -> None:
    for run in world.runs:
        got = client.analytics.GetRunResults(pb.GetRunResultsRequest(run_id=run))
        want = expected_results(world, run)
        assert got.run_id == run
        assert got.trace_count == want["trace_count"]
        assert [s.name for s in got.assessments] == list(want["names"])
        for s in got.assessments:
            w = want["names"][s.name]
            assert (s.count, s.numeric_count, s.error_count) == (w["count"], w["numeric_count"], w["error_count"])
            for key in ("mean", "min", "max", "p50", "p90", "pass_rate"):
                assert close(optional(s, key), w[key]), (s.name, key, optional(s, key), w[key])


def test_run_results_of_a_run_without_assessments(client: Client) -> None:
    exp = client.create_experiment("empty-results")["experiment_id"]
    run = create_run(client, exp)
    got = client.analytics.GetRunResults(pb.GetRunResultsRequest(run_id=run))
    assert (got.run_id, got.trace_count, list(got.assessments)) == (run, 0, [])


def pair_values(world: World, run: str) -> dict[tuple[str, str], tuple[float, str]]:
    """(name, pair key) -> (mean value, smallest trace id) for one run, as CompareRuns defines:
    the mean of the run's valid, non-error numeric feedback of that name on the key's traces."""
    keyed: dict[tuple[str, str], list[tuple[float, str]]] = defaultdict(list)
    for f in world.feedback:
        if f.run_id == run and f.valid and not f.error and (v := numeric(f.value)) is not None:
            key = world.records.get((run, f.trace_id)) or world.request_ids.get(f.trace_id)
            if key:
                keyed[(f.name, key)].append((v, f.trace_id))
    return {k: (sum(v for v, _ in vs) / len(vs), min(t for _, t in vs)) for k, vs in keyed.items()}


def test_compare_runs_matches_brute_force_across_pages(client: Client) -> None:
    assert_comparison(client, build_world(client, seed=11, runs=3, traces_per_run=16))


def assert_comparison(client: Client, world: World, *, expect_changes: bool = True) -> None:
    baseline, *candidates = world.runs
    base = pair_values(world, baseline)
    pages = []
    token = ""
    while True:
        request = pb.CompareRunsRequest(
            baseline_run_id=baseline, candidate_run_ids=candidates, page_size=3, page_token=token
        )
        page = client.analytics.CompareRuns(request)
        pages.append(page)
        token = page.next_page_token
        if not token:
            break
    first = pages[0]
    assert [c.candidate_run_id for c in first.comparisons] == candidates
    assert all(not p.comparisons for p in pages[1:])
    want_changes = []
    for position, candidate in enumerate(candidates):
        cand = pair_values(world, candidate)
        comparison = first.comparisons[position]
        names = sorted({n for n, _ in base} | {n for n, _ in cand})
        assert [a.name for a in comparison.assessments] == names
        for a in comparison.assessments:
            pairs = [(base[k][0], cand[k][0]) for k in base if k[0] == a.name and k in cand]
            assert a.paired_count == len(pairs)
            assert a.wins == sum(1 for b, c in pairs if c > b)
            assert a.losses == sum(1 for b, c in pairs if c < b)
            assert a.ties == sum(1 for b, c in pairs if c == b)
            assert a.baseline_only == sum(1 for k in base if k[0] == a.name) - len(pairs)
            assert a.candidate_only == sum(1 for k in cand if k[0] == a.name) - len(pairs)
            if pairs:
                assert close(a.baseline_mean, sum(b for b, _ in pairs) / len(pairs))
                assert close(a.candidate_mean, sum(c for _, c in pairs) / len(pairs))
                assert close(a.mean_difference, sum(c - b for b, c in pairs) / len(pairs))
            else:
                assert not a.HasField("mean_difference")
        for name, key in sorted(k for k in base if k in cand):
            (b, b_trace), (c, c_trace) = base[(name, key)], cand[(name, key)]
            if b != c:
                want_changes.append((candidate, name, key, b_trace, c_trace, b, c))
    got_changes = [
        (p.candidate_run_id, p.name, p.pair_key, p.baseline_trace_id, p.candidate_trace_id, *pair_of(p))
        for page in pages
        for p in page.changed_pairs
    ]
    assert len(got_changes) == len(want_changes)
    for got, want in zip(got_changes, want_changes, strict=True):
        assert got[:5] == want[:5]
        assert close(got[5], want[5]) and close(got[6], want[6])
    assert want_changes or not expect_changes, "the generated data should contain changed pairs"


def pair_of(p: pb.ChangedPair) -> tuple[float, float]:
    return p.baseline_value, p.candidate_value


def test_compare_runs_restricted_to_names(client: Client) -> None:
    world = build_world(client, seed=5, runs=2, traces_per_run=10)
    request = pb.CompareRunsRequest(
        baseline_run_id=world.runs[0], candidate_run_ids=[world.runs[1]], assessment_names=["tone"]
    )
    got = client.analytics.CompareRuns(request)
    assert {a.name for c in got.comparisons for a in c.assessments} <= {"tone"}
    assert all(p.name == "tone" for p in got.changed_pairs)


# -- bad input -------------------------------------------------------------------------------

BAD = grpc.StatusCode.INVALID_ARGUMENT


def test_get_run_results_bad_input(client: Client) -> None:
    get = client.analytics.GetRunResults
    expect_error(BAD, "INVALID_FIELD", lambda: get(pb.GetRunResultsRequest()), field="run_id")
    expect_error(BAD, "INVALID_FIELD", lambda: get(pb.GetRunResultsRequest(run_id="XYZ")), field="run_id")
    missing = "0" * 32
    err = expect_error(grpc.StatusCode.NOT_FOUND, "RUN_NOT_FOUND", lambda: get(pb.GetRunResultsRequest(run_id=missing)))
    assert err.metadata.get("run_id") == missing


@pytest.mark.parametrize(
    ("candidates", "field"),
    [
        ([], "candidate_run_ids"),
        (["a" * 32] * 2, "candidate_run_ids"),
        (["BASE"], "candidate_run_ids"),
        ([f"{i:032x}" for i in range(11)], "candidate_run_ids"),
        (["nothex"], "candidate_run_ids[0]"),
    ],
)
def test_compare_runs_bad_candidates(client: Client, candidates: list[str], field: str) -> None:
    exp = client.create_experiment(f"bad-compare-{field}-{len(candidates)}")["experiment_id"]
    base = create_run(client, exp)
    candidates = [base if c == "BASE" else c for c in candidates]
    request = pb.CompareRunsRequest(baseline_run_id=base, candidate_run_ids=candidates)
    expect_error(BAD, "INVALID_FIELD", lambda: client.analytics.CompareRuns(request), field=field)


def _call(method: Any, request: Any) -> Any:
    return lambda: method(request)


def test_compare_runs_unknown_runs_and_tokens(client: Client) -> None:
    exp = client.create_experiment("compare-errors")["experiment_id"]
    base, cand, other = (create_run(client, exp) for _ in range(3))
    compare = client.analytics.CompareRuns
    missing = "f" * 32
    for request in (
        pb.CompareRunsRequest(baseline_run_id=missing, candidate_run_ids=[cand]),
        pb.CompareRunsRequest(baseline_run_id=base, candidate_run_ids=[cand, missing]),
    ):
        err = expect_error(grpc.StatusCode.NOT_FOUND, "RUN_NOT_FOUND", _call(compare, request))
        assert err.metadata.get("run_id") == missing
    bad = pb.CompareRunsRequest(baseline_run_id=base, candidate_run_ids=[cand], page_token="garbage")
    expect_error(BAD, "INVALID_PAGE_TOKEN", lambda: compare(bad))
    # a token of one comparison is refused by another
    world = build_world(client, seed=3, runs=2, traces_per_run=12)
    first = compare(
        pb.CompareRunsRequest(baseline_run_id=world.runs[0], candidate_run_ids=[world.runs[1]], page_size=1)
    )
    assert first.next_page_token
    reused = pb.CompareRunsRequest(
        baseline_run_id=world.runs[0], candidate_run_ids=[other], page_size=1, page_token=first.next_page_token
    )
    expect_error(BAD, "INVALID_PAGE_TOKEN", lambda: compare(reused))


def test_run_status_is_not_needed_for_results(client: Client) -> None:
    """Results are readable while the run is RUNNING and after it is deleted."""
    world = build_world(client, seed=9, runs=1, traces_per_run=6)
    run = world.runs[0]
    client.runs.DeleteRun(rs.DeleteRunRequest(run_id=run))
    got = client.analytics.GetRunResults(pb.GetRunResultsRequest(run_id=run))
    assert got.trace_count == expected_results(world, run)["trace_count"]
    assert rpb.RunStatus.Name(client.runs.GetRun(rs.GetRunRequest(run_id=run)).status) == "RUN_STATUS_RUNNING"


def test_results_follow_every_kind_of_write(client: Client) -> None:
    """Results and comparisons are served from a per-run cache: after each kind of write that
    changes them, the next read matches the brute-force computation again."""
    world = build_world(client, seed=23, runs=2, traces_per_run=12)
    rng = random.Random(23)

    def check() -> None:
        assert_results(client, world)
        assert_comparison(client, world, expect_changes=False)

    check()  # fills the cache
    run = world.runs[1]
    live = [f for f in world.feedback if f.valid and not f.error]
    # new feedback in a run
    trace = next(f.trace_id for f in live if f.run_id == run)
    made = client.log_feedback(trace, "tone", 0.125, run_id=run)
    world.feedback.append(Feedback(trace, "tone", 0.125, run, assessment_id=made["assessment_id"]))
    check()
    # a changed value
    target = next(f for f in live if f.run_id == run and isinstance(f.value, float))
    update = apb.Assessment(assessment_id=target.assessment_id, feedback=apb.Feedback(value=struct_value(7.5)))
    client.assessments.UpdateAssessment(
        aspb.UpdateAssessmentRequest(assessment=update, update_mask=FieldMask(paths=["feedback"]))
    )
    target.value = 7.5
    check()
    # a deleted assessment
    doomed = next(f for f in live if f.run_id == run and f is not target and f.assessment_id not in world.overrides)
    client.delete_assessment(doomed.assessment_id)
    world.feedback.remove(doomed)
    check()
    # an override of a run's feedback, then deleting the override restores it
    victim = next(f for f in world.feedback if f.run_id == world.runs[0] and f.valid and not f.error)
    override = client.log_feedback(victim.trace_id, victim.name, -1.0, overrides=victim.assessment_id)
    victim.valid = False
    check()
    client.delete_assessment(override["assessment_id"])
    victim.valid = True
    check()
    # links: a new record id for a linked trace
    linked = sorted({t for (r, t) in world.records if r == run})
    relink = rng.choice(linked)
    request = tpb.LinkTracesToRunRequest(run_id=run, trace_ids=[relink], dataset_record_ids={relink: "dr-" + "f" * 32})
    client.traces.LinkTracesToRun(request)
    world.records[(run, relink)] = "dr-" + "f" * 32
    check()
    # the request id tag: set on an unlinked trace, changed, removed
    tagged = next(f.trace_id for f in world.feedback if f.run_id == run and (run, f.trace_id) not in world.records)
    client.set_trace_tag(tagged, REQUEST_ID, "req-new")
    world.request_ids[tagged] = "req-new"
    check()
    client.delete_trace_tag(tagged, REQUEST_ID)
    world.request_ids.pop(tagged)
    check()
    # deleted traces take their assessments with them
    gone = sorted({f.trace_id for f in world.feedback if f.run_id == world.runs[0]})[:3]
    client.delete_traces(world.experiment_id, gone)
    world.feedback = [f for f in world.feedback if f.trace_id not in gone]
    check()
