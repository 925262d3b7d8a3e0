"""GetAgreement (SPEC §8.3): inter-rater agreement per schema, on textbook data fed through
SubmitLabels, compared with the published values or with ``store/agreement.py`` on the same data."""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import grpc
import pytest

from mlgenai.client import Client
from store.agreement import fleiss_kappa, krippendorff_alpha
from tests.helpers import expect_error

# Cohen (Wikipedia "Cohen's kappa" example): 50 proposals, two readers: 20 yes/yes, 5 yes/no,
# 10 no/yes, 15 no/no; p_o = 0.7, p_e = 0.5, kappa = 0.4.
COHEN = [(True, True)] * 20 + [(True, False)] * 5 + [(False, True)] * 10 + [(False, False)] * 15
# Three raters, pass/fail and a multi-select categorical answer per item.
FLEISS_PASS = [
    (True, True, True), (True, True, False), (False, False, False), (True, False, False),
    (True, True, True), (False, False, True), (True, True, True), (False, False, False),
]  # fmt: skip
FLEISS_ASPECTS = [
    (["a"], ["a"], ["a"]), (["a", "b"], ["b", "a"], ["a"]), (["c"], ["c"], ["b"]), (["b"], ["a", "b"], ["b"]),
    (["a"], ["a"], ["a"]), (["c", "a"], ["a", "c"], ["a", "c"]), (["b"], ["b"], ["c"]), (["c"], ["c"], ["c"]),
]  # fmt: skip
# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units,
# missing values; interval alpha 0.849.
KRIPPENDORFF = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, None, None, None],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, None, 3],
    "C": [None, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, None],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, None],
}


def get_agreement(client: Client, session_id: str) -> list[dict[str, Any]]:
    return client.get_agreement(session_id)


def _record_items(client: Client, exp: str, session_id: str, n: int, tag: str) -> list[str]:
    """``n`` dataset records of a new dataset, added to the session as items; their item ids."""
    ds = client.create_dataset(f"items {tag}", experiment_ids=[exp])["dataset_id"]
    merged = client.merge_records(ds, [{"inputs": {"case": tag, "n": i}} for i in range(n)])
    record_ids = [r["dataset_record_id"] for r in merged["results"]]
    added = client.add_items(session_id, records=[(ds, r) for r in record_ids])
    return [i["item_id"] for i in added["items"]]


def _session(client: Client, exp: str, name: str, schema_ids: list[str], raters: int) -> str:
    session = client.create_labeling_session(exp, name, schema_ids, raters_per_item=raters)
    return str(session["labeling_session_id"])


def _by_name(found: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {a["name"]: a for a in found}


def test_agreement_on_textbook_data(client: Client) -> None:
    exp = client.create_experiment("agreement")["experiment_id"]
    correct = client.create_label_schema(exp, "correct", pass_fail={})["schema_id"]
    note = client.create_label_schema(exp, "note", text={})["schema_id"]
    ok = client.create_label_schema(exp, "ok", pass_fail={})["schema_id"]
    aspects = client.create_label_schema(exp, "aspects", categorical={"options": ["a", "b", "c"], "multi_select": True})
    score = client.create_label_schema(exp, "score", numeric={"min_value": 0, "max_value": 10}, type="expectation")

    # Cohen: two raters over 50 items; a 51st item rated by one of them only does not count.
    cohen = _session(client, exp, "cohen", [correct, note], 2)
    cohen_items = _record_items(client, exp, cohen, len(COHEN) + 1, "cohen")
    for item, (a, b) in zip(cohen_items, COHEN, strict=False):
        client.submit_labels(cohen, item, "reader-a", {correct: a, note: "fine" if a else "no"})
        client.submit_labels(cohen, item, "reader-b", {correct: b, note: "fine" if b else "nope"})
    client.submit_labels(cohen, cohen_items[-1], "reader-a", {correct: False, note: "alone"})
    found = get_agreement(client, cohen)
    assert [a["schema_id"] for a in found] == [correct, note]  # the session's order
    first, text = found
    assert (first["name"], first["statistic"], first["items"], first["raters"]) == ("correct", "cohen_kappa", 50, 2)
    assert first["value"] == pytest.approx(0.4, abs=1e-12)
    assert first["observed_agreement"] == pytest.approx(0.7, abs=1e-12)
    # Text: counts only.
    assert text == {
        "schema_id": note, "name": "note", "statistic": "none", "value": None, "observed_agreement": None,
        "items": 50, "raters": 2,
    }  # fmt: skip

    # Fleiss: three raters; pass/fail and multi-select (an answer is its set of options).
    fleiss = _session(client, exp, "fleiss", [ok, aspects["schema_id"]], 3)
    fleiss_items = _record_items(client, exp, fleiss, len(FLEISS_PASS), "fleiss")
    for item, passes, chosen in zip(fleiss_items, FLEISS_PASS, FLEISS_ASPECTS, strict=True):
        for rater, value, options in zip(("r1", "r2", "r3"), passes, chosen, strict=True):
            client.submit_labels(fleiss, item, rater, {ok: value, aspects["schema_id"]: options})
    result = _by_name(get_agreement(client, fleiss))
    assert (result["ok"]["statistic"], result["ok"]["items"], result["ok"]["raters"]) == ("fleiss_kappa", 8, 3)
    assert result["ok"]["value"] == pytest.approx(fleiss_kappa(FLEISS_PASS), abs=1e-12)
    sets = [[tuple(sorted(o)) for o in row] for row in FLEISS_ASPECTS]
    assert result["aspects"]["statistic"] == "fleiss_kappa"
    assert result["aspects"]["value"] == pytest.approx(fleiss_kappa(sets), abs=1e-12)
    assert 0 < result["aspects"]["observed_agreement"] < 1

    # Krippendorff: numeric, four observers with missing values; unit 12 has one value only.
    kripp = _session(client, exp, "krippendorff", [score["schema_id"]], 4)
    kripp_items = _record_items(client, exp, kripp, 12, "krippendorff")
    for rater, scores in KRIPPENDORFF.items():
        for item, given in zip(kripp_items, scores, strict=True):
            if given is not None:
                client.submit_labels(kripp, item, rater, {score["schema_id"]: given})
    (alpha,) = get_agreement(client, kripp)
    assert (alpha["statistic"], alpha["items"], alpha["raters"]) == ("krippendorff_alpha", 11, 4)
    assert alpha["value"] == pytest.approx(0.849, abs=5e-4)
    units = [[row[u] for row in KRIPPENDORFF.values() if row[u] is not None] for u in range(12)]
    assert alpha["value"] == pytest.approx(krippendorff_alpha(units, "interval"), abs=1e-12)
    assert alpha["observed_agreement"] is None


def test_agreement_without_submissions_and_with_unanimity(client: Client) -> None:
    exp = client.create_experiment("agreement-empty")["experiment_id"]
    good = client.create_label_schema(exp, "good", pass_fail={})["schema_id"]
    score = client.create_label_schema(exp, "score", numeric={})["schema_id"]
    session = _session(client, exp, "empty", [good, score], 2)
    items = _record_items(client, exp, session, 3, "empty")
    assert get_agreement(client, session) == [
        {"schema_id": good, "name": "good", "statistic": "fleiss_kappa", "value": None, "observed_agreement": None,
         "items": 0, "raters": 0},
        {"schema_id": score, "name": "score", "statistic": "krippendorff_alpha", "value": None,
         "observed_agreement": None, "items": 0, "raters": 0},
    ]  # fmt: skip
    # Everybody agrees on one category: kappa is undefined (no variation), p_o is 1.
    for item in items:
        for rater in ("x", "y"):
            client.submit_labels(session, item, rater, {good: True, score: 3})
    good_result, score_result = get_agreement(client, session)
    assert (good_result["statistic"], good_result["value"], good_result["observed_agreement"]) == (
        "cohen_kappa",
        None,
        1.0,
    )
    assert (good_result["items"], good_result["raters"]) == (3, 2)
    assert (score_result["value"], score_result["items"]) == (None, 3)


def test_agreement_bad_requests(client: Client) -> None:
    expect_error(
        grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", lambda: get_agreement(client, ""), "labeling_session_id"
    )
    for bad in ("lbs-123", "lbs-" + "A" * 32, "lss-" + "0" * 32, "lbs-" + "0" * 32 + " "):
        call: Callable[[], Any] = partial(get_agreement, client, bad)
        expect_error(grpc.StatusCode.INVALID_ARGUMENT, "INVALID_FIELD", call, "labeling_session_id")
    err = expect_error(
        grpc.StatusCode.NOT_FOUND, "LABELING_SESSION_NOT_FOUND", lambda: get_agreement(client, "lbs-" + "0" * 32)
    )
    assert err.metadata["labeling_session_id"] == "lbs-" + "0" * 32
