"""Schema and profile (SPEC §5.4): evolution, and every number against a brute-force recomputation."""

from __future__ import annotations

from typing import Any

from hypothesis import HealthCheck, given, settings, strategies as st

from mlgenai.client import Client
from store.uow import Database
from tests.api.dataset_support import assert_profiles_match, brute_force_profile, served_profile
from tests.helpers import count_rows


def schema(client: Client, dataset_id: str) -> dict[str, dict[str, list[str]]]:
    s = client.get_dataset(dataset_id)["schema"]
    return {part: {f["path"]: f["types"] for f in s[part]} for part in ("inputs", "outputs", "expectations")}


def check_profile(client: Client, dataset_id: str) -> dict[str, Any]:
    dataset = client.get_dataset(dataset_id)
    records = list(client.iter_records(dataset_id))
    assert dataset["num_records"] == dataset["profile"]["num_records"] == len(records)
    assert_profiles_match(served_profile(dataset), brute_force_profile(records))
    return dataset


def test_schema_evolves_with_new_fields_and_types(client: Client) -> None:
    ds = client.create_dataset("evolving")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"question": "q1"}, "outputs": "plain text"}])
    assert schema(client, ds) == {"inputs": {"question": ["string"]}, "outputs": {"": ["string"]}, "expectations": {}}
    # A later record adds a field, and outputs switch from a scalar to an object (MLflow: 500).
    client.merge_records(
        ds,
        [
            {
                "inputs": {"question": "q2", "context": {"doc.id": 7}},
                "outputs": {"answer": 1},
                "expectations": {"e": None},
            }
        ],
    )
    assert schema(client, ds) == {
        "inputs": {"question": ["string"], "context": ["object"], "context.`doc.id`": ["integer"]},
        "outputs": {"": ["string", "object"], "answer": ["integer"]},
        "expectations": {"e": ["null"]},
    }
    old = next(iter(client.iter_records(ds)))
    assert old["inputs"] == {"question": "q1"} and old["outputs"] == "plain text"  # nothing migrated
    client.merge_records(ds, [{"inputs": {"question": "q3"}, "outputs": 2.5}])
    assert schema(client, ds)["outputs"] == {"": ["string", "number", "object"], "answer": ["integer"]}
    client.delete_records(ds, [old["dataset_record_id"]])
    client.merge_records(ds, [{"inputs": {"question": "q3"}, "outputs": None}])
    assert schema(client, ds)["outputs"] == {"": ["object"], "answer": ["integer"]}  # over current records
    check_profile(client, ds)


def test_extremes_recomputed_when_their_last_holder_goes(client: Client, database: Database) -> None:
    ds = client.create_dataset("extremes")["dataset_id"]
    result = client.merge_records(
        ds, [{"inputs": {"i": i}, "expectations": {"score": s, 'we"ird': s}} for i, s in enumerate([5, 1, 9, 9, 3])]
    )
    ids = [r["dataset_record_id"] for r in result["results"]]
    client.delete_records(ds, [ids[2]])  # one of two 9s: max stays, one holder left
    assert check_profile(client, ds)["profile"]["expectations"][0]["numbers"]["max"] == 9
    client.delete_records(ds, [ids[3], ids[1]])  # the last 9 and the only 1: both recomputed
    numbers = check_profile(client, ds)["profile"]["expectations"][0]["numbers"]
    assert (numbers["min"], numbers["max"], numbers["count"]) == (3, 5, 2)
    client.merge_records(ds, [{"inputs": {"i": 0}, "expectations": {"score": "text"}}])  # 5 becomes a string
    fields = {f["path"]: f for f in check_profile(client, ds)["profile"]["expectations"]}
    assert fields["score"]["type_counts"] == {"integer": 1, "string": 1}
    assert count_rows(database, "evaluation_dataset_fields") == 3  # inputs i, expectations score and we"ird


def test_deleting_every_record_empties_schema_and_profile(client: Client, database: Database) -> None:
    ds = client.create_dataset("emptied")["dataset_id"]
    result = client.merge_records(ds, [{"inputs": {"i": i}, "outputs": {"o": i}} for i in range(3)])
    client.delete_records(ds, [r["dataset_record_id"] for r in result["results"]])
    dataset = client.get_dataset(ds)
    assert dataset["profile"] == {"num_records": 0, "inputs": [], "outputs": [], "expectations": []}
    assert not any(dataset["schema"][p] for p in ("inputs", "outputs", "expectations"))
    assert count_rows(database, "evaluation_dataset_fields") == 0


def test_long_paths_are_not_tracked_and_say_so(client: Client) -> None:
    ds = client.create_dataset("long-paths")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"k" * 600: 1, "short": {"a": {"b": {"c": {"d": {"e": {"f": 1}}}}}}}}])
    dataset = client.get_dataset(ds)
    assert dataset["schema"]["truncated"] is True
    paths = [f["path"] for f in dataset["schema"]["inputs"]]
    assert paths == ["short", "short.a", "short.a.b", "short.a.b.c", "short.a.b.c.d"]  # 5 levels deep


def test_distinct_count_is_exact_up_to_1000_then_an_estimate(client: Client) -> None:
    ds = client.create_dataset("distinct")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"i": i}, "expectations": {"same": 1}} for i in range(1000)])
    fields = {f["path"]: f for f in client.get_dataset(ds)["profile"]["inputs"]}
    assert (fields["i"]["distinct_count"], fields["i"]["distinct_exact"]) == (1000, True)
    client.merge_records(ds, [{"inputs": {"i": i}, "expectations": {"same": 1}} for i in range(1000, 4000)])
    dataset = client.get_dataset(ds)
    field = {f["path"]: f for f in dataset["profile"]["inputs"]}["i"]
    assert field["distinct_exact"] is False and 3000 < field["distinct_count"] < 5000
    assert {f["path"]: f for f in dataset["profile"]["expectations"]}["same"]["distinct_count"] == 1


SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-1000, 1000),
    st.floats(-1e6, 1e6, allow_nan=False, allow_infinity=False),
    st.text(alphabet="abcé🙂 \n", max_size=6),
)
VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=2) | st.dictionaries(st.sampled_from(["x", "y.z"]), inner, max_size=2),
    max_leaves=4,
)
RECORD = st.fixed_dictionaries(
    {"inputs": st.dictionaries(st.sampled_from(["q", "n"]), st.integers(0, 6), min_size=1)},
    optional={
        "outputs": VALUES,
        "expectations": st.dictionaries(st.sampled_from(["a", "b", "c"]), VALUES, max_size=3),
    },
)


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=st.lists(st.lists(RECORD, min_size=1, max_size=6), min_size=1, max_size=4), deletes=st.data())
def test_profile_matches_a_brute_force_recomputation(
    client: Client, batches: list[list[dict[str, Any]]], deletes: st.DataObject
) -> None:
    ds = client.create_dataset("random-profile")["dataset_id"]
    for batch in batches:
        client.merge_records(ds, batch)
        check_profile(client, ds)
        ids = [r["dataset_record_id"] for r in client.iter_records(ds)]
        doomed = deletes.draw(st.lists(st.sampled_from(ids), max_size=2)) if ids else []
        if doomed:
            client.delete_records(ds, doomed)
            check_profile(client, ds)
