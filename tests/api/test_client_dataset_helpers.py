"""The client's dataset helpers against a real server: batching, point-in-time reads, pandas."""

from __future__ import annotations

import pandas

from mlgenai.client import Client


def test_merge_records_batches_and_sums(client: Client) -> None:
    ds = client.create_dataset("batched")["dataset_id"]
    result = client.merge_records(ds, [{"inputs": {"i": i}} for i in range(25)], batch_size=10)
    assert (result["created_count"], result["updated_count"], len(result["results"])) == (25, 0, 25)
    assert result["version"] == 3 and result["num_records"] == 25  # one version per changing call
    again = client.merge_records(ds, [{"inputs": {"i": i}, "expectations": {"e": i}} for i in range(0, 25, 2)])
    assert (again["updated_count"], again["version"]) == (13, 4)


def test_iter_records_and_to_pandas_at_a_version(client: Client) -> None:
    ds = client.create_dataset("frames")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": "a"}, "expectations": {"answer": 1}}])
    client.merge_records(ds, [{"inputs": {"q": "b"}}, {"inputs": {"q": "a"}, "expectations": {"answer": 2}}])
    assert [r["inputs"] for r in client.iter_records(ds, version=1)] == [{"q": "a"}]
    frame = client.to_pandas(ds)
    assert isinstance(frame, pandas.DataFrame)
    assert [r["q"] for r in frame["inputs"]] == ["a", "b"]
    assert list(frame["expectations"]) == [{"answer": 2}, {}]
    old = client.to_pandas(ds, version=1)
    assert len(old) == 1 and old["expectations"][0] == {"answer": 1}
