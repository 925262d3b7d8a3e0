"""The client's evaluation helpers against a real server: log two evaluations of a dataset in
a few lines each, read the results, compare the runs and print the comparison."""

from __future__ import annotations

import pytest

from mlgenai.client import Client, format_comparison

QUESTIONS = [{"inputs": {"q": f"what is {i} + {i}?"}, "expectations": {"answer": 2 * i}} for i in range(30)]


def answer_v1(inputs: dict[str, str]) -> int:
    n = int(inputs["q"].split()[2])
    return 2 * n if n % 3 else n  # wrong on every third question


def answer_v2(inputs: dict[str, str]) -> int:
    n = int(inputs["q"].split()[2])
    return 2 * n if n % 5 else n + 1  # wrong on every fifth


def evaluate(client: Client, experiment_id: str, dataset_id: str, app: object, name: str) -> str:
    assert callable(app)
    with client.evaluation(experiment_id, name=name, dataset_id=dataset_id) as ev:
        for record in client.iter_records(dataset_id, version=ev.dataset_version):
            answer = app(record["inputs"])
            correct = answer == record["expectations"]["answer"]
            ev.log_row(
                record["inputs"],
                {"answer": answer},
                record_id=record["dataset_record_id"],
                feedback={"correct": correct, "score": 1.0 if correct else 0.0},
            )
    return ev.run_id


def test_log_results_and_compare_two_evaluations(client: Client) -> None:
    exp = client.create_experiment("client-evaluation")["experiment_id"]
    ds = client.create_dataset("arithmetic", experiment_ids=[exp])["dataset_id"]
    client.merge_records(ds, QUESTIONS)
    baseline = evaluate(client, exp, ds, answer_v1, "v1")
    candidate = evaluate(client, exp, ds, answer_v2, "v2")

    run = client.get_run(candidate)
    assert run["status"] == "FINISHED" and run["dataset"]["dataset_version"] == 1
    results = {a["name"]: a for a in client.get_run_results(baseline)["assessments"]}
    wrong_v1 = sum(1 for i in range(30) if i % 3 == 0 and i != 0)
    assert results["correct"]["count"] == 30
    assert results["correct"]["pass_rate"] == pytest.approx((30 - wrong_v1) / 30)
    assert results["score"]["mean"] == pytest.approx((30 - wrong_v1) / 30)

    comparison = client.compare_runs(baseline, [candidate])
    by_name = {a["name"]: a for a in comparison["comparisons"][0]["assessments"]}
    wrong_v2 = {i for i in range(30) if i % 5 == 0}
    wrong_v1_set = {i for i in range(30) if i % 3 == 0 and i != 0}
    assert by_name["score"]["paired_count"] == 30
    assert by_name["score"]["wins"] == len(wrong_v1_set - wrong_v2)
    assert by_name["score"]["losses"] == len(wrong_v2 - wrong_v1_set)
    changed = [p for p in comparison["changed_pairs"] if p["name"] == "score"]
    assert len(changed) == len(wrong_v1_set ^ wrong_v2)
    text = format_comparison(comparison)
    assert "score" in text.splitlines()[2] or "score" in text
    assert text.splitlines()[0].split()[:3] == ["candidate", "assessment", "pairs"]


def test_a_failing_block_marks_the_run_failed(client: Client) -> None:
    exp = client.create_experiment("client-evaluation-failed")["experiment_id"]
    with pytest.raises(RuntimeError), client.evaluation(exp, name="boom") as ev:
        ev.log_row({"q": "x"}, {"a": 1}, request_id="row-1", feedback={"ok": True})
        raise RuntimeError("the application crashed")
    assert client.get_run(ev.run_id)["status"] == "FAILED"
    assert client.get_run_results(ev.run_id)["assessments"][0]["count"] == 1
