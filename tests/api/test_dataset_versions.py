"""Versions (SPEC §5.5): point-in-time reads, ListDatasetVersions, DiffDatasetVersions, digests.

The random histories are checked against ``Model`` (tests/api/dataset_support.py): after every
call, ListRecords at **every** version so far must equal the model's snapshot of it.
"""

from __future__ import annotations

from typing import Any

import grpc
import pytest
from hypothesis import HealthCheck, example, given, settings, strategies as st

from mlgenai.client import Client
from mlgenai.v1 import evaluation_dataset_service_pb2 as pb
from store.canonical import canonical_json
from tests.api.dataset_support import Model, content, listed
from tests.helpers import expect_error

INPUT_KEYS = st.sampled_from(["q", "a", "b"])
SMALL = st.one_of(st.integers(-3, 3), st.sampled_from(["x", "y", "", "ü"]), st.booleans(), st.none())
RECORDS = st.fixed_dictionaries(
    {"inputs": st.dictionaries(INPUT_KEYS, st.integers(0, 3), min_size=1, max_size=2)},
    optional={
        "outputs": SMALL,
        "expectations": st.dictionaries(st.sampled_from(["e1", "e2"]), SMALL, max_size=2),
        "tags": st.dictionaries(st.sampled_from(["t1", "t2"]), st.sampled_from(["1", "2"]), max_size=2),
    },
)
STEPS = st.lists(
    st.one_of(
        st.tuples(st.just("merge"), st.lists(RECORDS, min_size=1, max_size=5)),
        st.tuples(st.just("delete"), st.lists(st.integers(0, 20), min_size=1, max_size=3)),
    ),
    min_size=1,
    max_size=6,
)


def run(client: Client, dataset_id: str, model: Model, step: tuple[str, Any]) -> None:
    kind, arg = step
    if kind == "merge":
        result = client.merge_records(dataset_id, arg)
        model.merge(arg, result)
        assert result["version"] == model.version
    else:
        ids = [r.record_id for r in model.current.values()]
        doomed = [ids[i % len(ids)] for i in arg] if ids else ["dr-" + "0" * 32]
        assert client.delete_records(dataset_id, doomed) == model.delete(doomed)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(steps=STEPS)
@example(steps=[("merge", [{"inputs": {"q": 0}, "outputs": 0}]), ("merge", [{"inputs": {"q": 0}, "outputs": False}])])
def test_every_version_reads_as_the_model_says(client: Client, steps: list[tuple[str, Any]]) -> None:
    dataset_id = client.create_dataset("history")["dataset_id"]
    model = Model()
    for step in steps:
        run(client, dataset_id, model, step)
        for version, snapshot in enumerate(model.versions):
            served = listed(client, dataset_id, version, page_size=2)
            assert canonical_json(served) == canonical_json(snapshot), f"version {version}"  # 0 is not false
        assert canonical_json(listed(client, dataset_id)) == canonical_json(model.versions[-1])
    dataset = client.get_dataset(dataset_id)
    assert dataset["version"] == model.version and dataset["num_records"] == len(model.current)
    versions = list(client.list_dataset_versions(dataset_id, page_size=2))
    assert [v["version"] for v in versions] == list(range(model.version, 0, -1))
    for v in versions:
        assert v["num_records"] == len(model.versions[v["version"]])
    assert versions[0]["digest"] == dataset["digest"] if versions else dataset["version"] == 0
    for a in range(model.version + 1):
        for b in range(model.version + 1):
            assert canonical_json(diff(client, dataset_id, a, b)) == canonical_json(model_diff(model, a, b)), (a, b)


def diff(client: Client, dataset_id: str, a: int, b: int) -> dict[str, tuple[str, Any, Any]]:
    changes = client.diff_dataset_versions(dataset_id, a, b, page_size=1)
    return {
        c["dataset_record_id"]: (
            c["change_type"],
            content(c["before"]) if c["before"] else None,
            content(c["after"]) if c["after"] else None,
        )
        for c in changes
    }


def model_diff(model: Model, a: int, b: int) -> dict[str, tuple[str, Any, Any]]:
    before, after = model.versions[a], model.versions[b]
    out: dict[str, tuple[str, Any, Any]] = {}
    for rid in before.keys() | after.keys():
        old, new = before.get(rid), after.get(rid)
        if old is None:
            out[rid] = ("ADDED", None, new)
        elif new is None:
            out[rid] = ("REMOVED", old, None)
        elif canonical_json(old) != canonical_json(new):  # as JSON: 0 and false differ
            out[rid] = ("CHANGED", old, new)
    return out


def test_diff_lists_added_removed_and_changed_records(client: Client) -> None:
    ds = client.create_dataset("diffs")["dataset_id"]
    v1 = client.merge_records(ds, [{"inputs": {"q": i}, "outputs": i} for i in range(5)])
    ids = [r["dataset_record_id"] for r in v1["results"]]
    client.merge_records(ds, [{"inputs": {"q": 1}, "outputs": "changed"}, {"inputs": {"q": 9}}])
    client.delete_records(ds, [ids[3]])
    changes = list(client.diff_dataset_versions(ds, 1))
    assert [(c["change_type"], c["dataset_record_id"]) for c in changes] == [
        ("CHANGED", ids[1]),
        ("REMOVED", ids[3]),
        ("ADDED", changes[2]["dataset_record_id"]),
    ]
    assert changes[0]["before"]["outputs"] == 1 and changes[0]["after"]["outputs"] == "changed"
    assert changes[1]["after"] is None and changes[2]["before"] is None
    assert list(client.diff_dataset_versions(ds, 3, 3)) == []
    backwards = list(client.diff_dataset_versions(ds, 3, 1))
    assert [c["change_type"] for c in backwards] == ["CHANGED", "ADDED", "REMOVED"]
    response = client.datasets.DiffDatasetVersions(pb.DiffDatasetVersionsRequest(dataset_id=ds, from_version=1))
    assert (response.from_version, response.to_version) == (1, 3)


def test_a_record_changed_and_changed_back_is_not_in_the_diff(client: Client) -> None:
    ds = client.create_dataset("flip")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": 1}, "outputs": "a"}])
    client.merge_records(ds, [{"inputs": {"q": 1}, "outputs": "b"}])
    client.merge_records(ds, [{"inputs": {"q": 1}, "outputs": "a"}])
    assert [c["change_type"] for c in client.diff_dataset_versions(ds, 1, 2)] == ["CHANGED"]
    assert list(client.diff_dataset_versions(ds, 1, 3)) == []
    digests = {v["version"]: v["digest"] for v in client.list_dataset_versions(ds)}
    assert digests[1] == digests[3] != digests[2]


def test_digest_identifies_content(client: Client) -> None:
    one = client.create_dataset("one")["dataset_id"]
    two = client.create_dataset("two")["dataset_id"]
    empty = client.get_dataset(one)["digest"]
    assert client.get_dataset(two)["digest"] == empty
    records = [{"inputs": {"q": i}, "expectations": {"a": i}, "tags": {"t": "x"}} for i in range(4)]
    client.merge_records(one, records)
    client.merge_records(two, list(reversed(records[2:])))
    client.merge_records(two, [{"inputs": {"q": 0}, "expectations": {"a": 0}}, records[1]])
    assert client.get_dataset(two)["digest"] != client.get_dataset(one)["digest"]  # a tag differs
    client.merge_records(two, [records[0]])
    assert client.get_dataset(two)["digest"] == client.get_dataset(one)["digest"]  # order does not count
    tagged = client.merge_records(two, [{"inputs": {"q": 0}, "tags": {"t": "y"}}])
    assert tagged["digest"] != client.get_dataset(one)["digest"]  # a record tag change counts
    ids = [r["dataset_record_id"] for r in client.iter_records(one)]
    client.delete_records(one, ids)
    assert client.get_dataset(one)["digest"] == empty  # deletes count
    client.merge_records(one, records)
    assert client.get_dataset(one)["digest"] != empty


def test_get_record_at_a_version(client: Client) -> None:
    ds = client.create_dataset("getrecord")["dataset_id"]
    rid = client.merge_records(ds, [{"inputs": {"q": 1}, "outputs": 1}])["results"][0]["dataset_record_id"]
    client.merge_records(ds, [{"inputs": {"q": 1}, "outputs": 2}])
    client.delete_records(ds, [rid])
    assert client.get_record(ds, rid, version=1)["outputs"] == 1
    assert client.get_record(ds, rid, version=2)["outputs"] == 2
    for version in (None, 0, 3):
        expect_error(
            grpc.StatusCode.NOT_FOUND, "DATASET_RECORD_NOT_FOUND", lambda v=version: client.get_record(ds, rid, v)
        )
    assert listed(client, ds, version=0) == {}


@pytest.mark.parametrize("page_size", [1, 3, 1000])
def test_list_records_pages_in_creation_order(client: Client, page_size: int) -> None:
    ds = client.create_dataset("pages")["dataset_id"]
    result = client.merge_records(ds, [{"inputs": {"i": i}} for i in range(10)])
    client.merge_records(ds, [{"inputs": {"i": 3}, "outputs": "x"}])
    ids = [r["dataset_record_id"] for r in result["results"]]
    assert list(listed(client, ds, page_size=page_size)) == ids
    assert list(listed(client, ds, version=1, page_size=page_size)) == ids
