"""Concurrent merges into one dataset (SPEC §5.3): no duplicate identity, no lost key, no version gap."""

from __future__ import annotations

import random
import threading
from concurrent.futures import ThreadPoolExecutor

import pytest
import sqlalchemy as sa

from mlgenai.client import Client, connect
from server.childproc import ServerProcess
from store.uow import Database

CALLERS = 8
INPUTS = 60
BATCH = 15


@pytest.mark.slow
@pytest.mark.postgresql_only
def test_eight_callers_on_two_server_processes_lose_nothing(backend: str, db_url: str) -> None:
    with ServerProcess(db_url, workers=2) as server:
        with connect(server.target, timeout=120) as client:
            dataset_id = client.create_dataset("contended")["dataset_id"]
        start = threading.Barrier(CALLERS)

        def caller(n: int) -> int:
            order = list(range(INPUTS))
            random.Random(n).shuffle(order)
            batches = [order[i : i + BATCH] for i in range(0, INPUTS, BATCH)]
            with connect(server.target, timeout=120) as client:  # one connection per caller
                start.wait()
                for b, batch in enumerate(batches):
                    records = [
                        {"inputs": {"q": i, "text": f"question {i}"}, "expectations": {f"caller{n}": b, "last": n}}
                        for i in batch
                    ]
                    client.merge_records(dataset_id, records)
            return len(batches)

        with ThreadPoolExecutor(CALLERS) as pool:
            calls = sum(pool.map(caller, range(CALLERS)))
        with connect(server.target, timeout=120) as client:
            records = list(client.iter_records(dataset_id))
            versions = list(client.list_dataset_versions(dataset_id))
            dataset = client.get_dataset(dataset_id)
    assert sorted(r["inputs"]["q"] for r in records) == list(range(INPUTS))  # one record per distinct inputs
    for r in records:
        assert {k for k in r["expectations"] if k.startswith("caller")} == {f"caller{n}" for n in range(CALLERS)}
    # Every call added keys, so every call made exactly one version, numbered without gaps.
    assert [v["version"] for v in versions] == list(range(calls, 0, -1))
    assert sum(v["added_count"] for v in versions) == INPUTS
    assert dataset["num_records"] == INPUTS and dataset["version"] == calls
    assert dataset["profile"]["expectations"][0]["count"] == INPUTS


def test_the_database_enforces_one_current_record_per_inputs(client: Client, database: Database) -> None:
    ds = client.create_dataset("unique")["dataset_id"]
    client.merge_records(ds, [{"inputs": {"q": 1}}])
    with database.engine.begin() as conn:
        row = conn.execute(sa.text("SELECT * FROM evaluation_dataset_records")).mappings().one()
        copy = dict(row) | {"position": row["position"] + 1, "dataset_record_id": "dr-" + "1" * 32}
        with pytest.raises(sa.exc.IntegrityError), conn.begin_nested():
            conn.execute(sa.text(_insert(copy)), copy)
        closed = dict(copy) | {"valid_to": 2}  # a closed version of the same inputs is fine
        with conn.begin_nested():
            conn.execute(sa.text(_insert(closed)), closed)


def _insert(row: dict[str, object]) -> str:
    columns = ", ".join(row)
    return f"INSERT INTO evaluation_dataset_records ({columns}) VALUES ({', '.join(':' + c for c in row)})"


def test_a_delete_waiting_on_a_merge_deletes_what_the_merge_wrote(client: Client, database: Database) -> None:
    """Records have no foreign key to their dataset: DeleteDataset deletes them under the
    dataset row's lock, which a merge holds until commit, so a merge that commits while the
    delete waits leaves no record behind."""
    ds = client.create_dataset("raced")["dataset_id"]
    kept = client.create_dataset("bystander")["dataset_id"]
    for target in (ds, kept):
        client.merge_records(target, [{"inputs": {"q": 1}}])
    with database.engine.connect() as conn:
        tx = conn.begin()
        lock = "SELECT version FROM evaluation_datasets WHERE dataset_id = :d"
        conn.execute(sa.text(lock + (" FOR UPDATE" if conn.dialect.name == "postgresql" else "")), {"d": ds})
        row = conn.execute(sa.text("SELECT * FROM evaluation_dataset_records WHERE dataset_id = :d"), {"d": ds})
        written = dict(row.mappings().one())
        written |= {"position": 2, "dataset_record_id": "dr-" + "2" * 32, "input_hash": "0" * 64}
        conn.execute(sa.text(_insert(written)), written)  # a merge's write, not yet committed
        deleting = threading.Thread(target=client.delete_dataset, args=(ds,))
        deleting.start()
        deleting.join(0.5)
        assert deleting.is_alive()  # waiting for the lock
        tx.commit()
    deleting.join(30)
    assert not deleting.is_alive()
    with database.engine.connect() as conn:
        left = conn.execute(sa.text("SELECT dataset_id, count(*) FROM evaluation_dataset_records GROUP BY dataset_id"))
        assert dict(left.all()) == {kept: 1}
