"""store/agreement.py against published worked examples and a literal coincidence-matrix alpha."""

from __future__ import annotations

import random
from collections import defaultdict
from collections.abc import Callable, Hashable
from typing import Any

import pytest
from hypothesis import given, settings, strategies as st

from store.agreement import AgreementResult, agreement, cohen_kappa, fleiss_kappa, krippendorff_alpha

# Wikipedia, "Cohen's kappa": 50 grant proposals, A/B = yes/no.
WIKI_COHEN = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15

# Wikipedia, "Fleiss' kappa", worked example: 10 subjects, 14 raters, 5 categories (counts per category).
WIKI_FLEISS = [
    [0, 0, 0, 0, 14],
    [0, 2, 6, 4, 2],
    [0, 0, 3, 5, 6],
    [0, 3, 9, 2, 0],
    [2, 2, 8, 1, 1],
    [7, 7, 0, 0, 0],
    [3, 2, 6, 3, 0],
    [2, 5, 3, 2, 2],
    [6, 5, 2, 1, 0],
    [0, 2, 2, 3, 7],
]

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability": 4 observers, 12 units, M = missing.
M = None
KRIPPENDORFF_2011: dict[str, list[int | None]] = {
    "A": [1, 2, 3, 3, 2, 1, 4, 1, 2, M, M, M],
    "B": [1, 2, 3, 3, 2, 2, 4, 1, 2, 5, M, 3],
    "C": [M, 3, 3, 3, 2, 3, 4, 2, 2, 5, 1, M],
    "D": [1, 2, 3, 3, 2, 4, 4, 1, 2, 5, 1, M],
}


def fleiss_items(table: list[list[int]]) -> list[list[int]]:
    return [[category for category, count in enumerate(row) for _ in range(count)] for row in table]


def krippendorff_units() -> list[list[int]]:
    observers = list(KRIPPENDORFF_2011.values())
    return [[x for row in observers if (x := row[u]) is not None] for u in range(12)]


# --- Cohen --------------------------------------------------------------------------------


def test_cohen_wikipedia_example() -> None:
    assert cohen_kappa(WIKI_COHEN) == pytest.approx(0.4, abs=1e-12)
    result = agreement([(f"p{i}", "A", a) for i, (a, _) in enumerate(WIKI_COHEN)]
                       + [(f"p{i}", "B", b) for i, (_, b) in enumerate(WIKI_COHEN)], "categorical")  # fmt: skip
    assert (result.statistic, result.items, result.raters) == ("cohen_kappa", 50, 2)
    assert result.value == pytest.approx(0.4, abs=1e-12)
    assert result.observed_agreement == pytest.approx(0.7, abs=1e-12)


def test_cohen_perfect_chance_and_undefined() -> None:
    assert cohen_kappa([("a", "a"), ("b", "b"), ("c", "c")]) == 1.0
    # p_o = 0.5 = p_e: agreement exactly at chance level.
    assert cohen_kappa([("y", "y"), ("y", "n"), ("n", "y"), ("n", "n")]) == 0.0
    assert cohen_kappa([]) is None
    assert cohen_kappa([("same", "same")] * 5) is None  # p_e = 1
    # Systematic disagreement is negative (−1 with two balanced categories).
    assert cohen_kappa([("y", "n"), ("n", "y")]) == -1.0


# --- Fleiss -------------------------------------------------------------------------------


def test_fleiss_wikipedia_example() -> None:
    items = fleiss_items(WIKI_FLEISS)
    assert all(len(item) == 14 for item in items)
    kappa = fleiss_kappa(items)
    assert kappa is not None
    assert round(kappa, 3) == 0.210

    labels = [(f"s{i}", f"r{r}", category) for i, item in enumerate(items) for r, category in enumerate(item)]
    result = agreement(labels, "categorical")
    assert (result.statistic, result.items, result.raters) == ("fleiss_kappa", 10, 14)
    assert result.value == kappa
    p_bar = result.observed_agreement
    assert p_bar is not None
    assert round(p_bar, 3) == 0.378
    p_e = (p_bar - kappa) / (1 - kappa)  # from κ = (P̄ − P̄e)/(1 − P̄e)
    assert round(p_e, 3) == 0.213


def test_fleiss_varying_raters_and_edge_cases() -> None:
    # Items with fewer than two ratings are ignored.
    assert fleiss_kappa([["a", "a"], ["b", "b", "b"], ["a"], []]) == 1.0
    # P_1 = 2/6, P_2 = 0 → P̄ = 1/6; p = (3/5, 2/5) → P̄e = 13/25; κ = (1/6 − 13/25)/(12/25) = −53/72.
    assert fleiss_kappa([["a", "a", "b"], ["a", "b"]]) == pytest.approx(-53 / 72, abs=1e-15)
    assert fleiss_kappa([]) is None
    assert fleiss_kappa([["x"], ["y"]]) is None
    assert fleiss_kappa([["x", "x"], ["x", "x", "x"]]) is None  # P̄e = 1


def test_fleiss_two_raters_is_scotts_pi_not_cohen() -> None:
    # Two raters with different marginals: Cohen uses each rater's own, Fleiss (Scott's pi) the pooled ones.
    pairs = [("y", "y")] * 20 + [("y", "n")] * 5 + [("n", "y")] * 10 + [("n", "n")] * 15
    scott = fleiss_kappa([[a, b] for a, b in pairs])
    # Pooled shares: yes 55/100, no 45/100 → P̄e = 0.505; P̄ = 0.7 → π = 0.195/0.495.
    assert scott == pytest.approx(0.195 / 0.495, abs=1e-12)
    assert scott != cohen_kappa(pairs)


# --- Krippendorff -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("level", "published"),
    [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849), ("ratio", 0.797)],
)
def test_krippendorff_2011_example(level: str, published: float) -> None:
    units = krippendorff_units()
    assert sum(len(u) for u in units) == 41  # 41 values, of which unit 12's single value is not pairable
    alpha = krippendorff_alpha(units, level)
    assert alpha is not None
    assert round(alpha, 3) == published


def test_krippendorff_missing_as_none_and_undefined() -> None:
    with_none = [[row[u] for row in KRIPPENDORFF_2011.values()] for u in range(12)]
    assert krippendorff_alpha(with_none, "nominal") == krippendorff_alpha(krippendorff_units(), "nominal")
    assert krippendorff_alpha([]) is None
    assert krippendorff_alpha([[1], [2], [3]]) is None  # nothing pairable
    assert krippendorff_alpha([[3, 3], [3, 3, 3]]) is None  # D_e = 0
    assert krippendorff_alpha([["a", "a"], ["a"]], "nominal") is None
    assert krippendorff_alpha([[1, 1], [2, 2], [5, 5]]) == 1.0
    with pytest.raises(ValueError, match="level"):
        krippendorff_alpha([[1, 2]], "cardinal")
    with pytest.raises(TypeError):
        krippendorff_alpha([["a", "b"]], "interval")
    with pytest.raises(ValueError, match="finite"):
        krippendorff_alpha([[1.0, float("nan")]], "interval")
    with pytest.raises(ValueError, match="≥ 0"):
        krippendorff_alpha([[1, -1]], "ratio")


def reference_alpha(units: list[list[Any]], level: str) -> float | None:
    """The coincidence matrix and the metric tables of Krippendorff (2011), summed literally."""
    units = [u for u in units if len(u) >= 2]
    o: defaultdict[tuple[Any, Any], float] = defaultdict(float)
    for u in units:
        for i, c in enumerate(u):
            for j, k in enumerate(u):
                if i != j:
                    o[c, k] += 1 / (len(u) - 1)
    n_c: defaultdict[Any, float] = defaultdict(float)
    for (c, _k), weight in o.items():
        n_c[c] += weight
    n = sum(n_c.values())
    values = sorted(n_c)

    def ordinal(c: Any, k: Any) -> float:
        lo, hi = min(c, k), max(c, k)
        return (sum(n_c[g] for g in values if lo <= g <= hi) - (n_c[c] + n_c[k]) / 2) ** 2

    delta2: dict[str, Callable[[Any, Any], float]] = {
        "nominal": lambda c, k: float(c != k),
        "ordinal": ordinal,
        "interval": lambda c, k: (c - k) ** 2,
        "ratio": lambda c, k: ((c - k) / (c + k)) ** 2 if c + k else 0.0,
    }
    d = delta2[level]
    d_e = sum(n_c[c] * n_c[k] * d(c, k) for c in values for k in values) / (n * (n - 1)) if n > 1 else 0.0
    if d_e == 0:
        return None
    d_o = sum(w * d(c, k) for (c, k), w in o.items()) / n
    return 1 - d_o / d_e


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.lists(st.integers(0, 6), max_size=5), max_size=12),
    st.sampled_from(["nominal", "ordinal", "interval", "ratio"]),
)
def test_krippendorff_equals_literal_coincidence_sums(units: list[list[int]], level: str) -> None:
    expected = reference_alpha(units, level)
    actual = krippendorff_alpha(units, level)
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, rel=1e-9, abs=1e-9)


def test_krippendorff_interval_is_shift_invariant_for_large_values() -> None:
    units = krippendorff_units()
    shifted = [[x + 1e9 for x in u] for u in units]
    assert krippendorff_alpha(shifted) == pytest.approx(krippendorff_alpha(units), abs=1e-9)


def test_nominal_alpha_approaches_fleiss_with_many_units() -> None:
    rng = random.Random(20240611)
    items: list[list[Hashable]] = []
    for _ in range(2000):
        truth = rng.choice("abcd")
        raters = rng.choice((2, 3, 3, 4))
        items.append([truth if rng.random() < 0.6 else rng.choice("abcd") for _ in range(raters)])
    kappa = fleiss_kappa(items)
    alpha = krippendorff_alpha(items, "nominal")
    assert kappa is not None
    assert alpha is not None
    assert 0.3 < kappa < 0.7  # neither trivial nor degenerate
    assert abs(alpha - kappa) < 0.01


# --- agreement() --------------------------------------------------------------------------


def test_agreement_two_raters_uses_cohen_over_items_rated_by_both() -> None:
    labels = [
        ("i1", "ann", "pass"), ("i1", "bob", "pass"),
        ("i2", "ann", "fail"), ("i2", "bob", "fail"),
        ("i3", "ann", "pass"), ("i3", "bob", "fail"),
        ("i4", "ann", "fail"), ("i4", "bob", "pass"),
        ("i5", "ann", "pass"),  # only one rater: not counted
    ]  # fmt: skip
    result = agreement(labels, "pass_fail")
    assert result == AgreementResult("cohen_kappa", 0.0, 4, 2, 0.5)


def test_agreement_three_raters_uses_fleiss() -> None:
    labels = [
        ("i1", "ann", "x"), ("i1", "bob", "x"), ("i1", "cy", "x"),
        ("i2", "ann", "y"), ("i2", "bob", "y"),
        ("i3", "cy", "y"), ("i3", "bob", "x"),
        ("i4", "ann", "y"),
    ]  # fmt: skip
    result = agreement(labels, "categorical")
    assert result.statistic == "fleiss_kappa"
    assert (result.items, result.raters) == (3, 3)
    assert result.value == fleiss_kappa([["x", "x", "x"], ["y", "y"], ["y", "x"]])
    assert result.observed_agreement == pytest.approx(2 / 3)


def test_agreement_numeric_uses_interval_alpha() -> None:
    labels = [(f"u{u}", name, row[u]) for name, row in KRIPPENDORFF_2011.items() for u in range(12)]
    result = agreement(labels, "numeric")
    assert result.statistic == "krippendorff_alpha"
    assert result.value is not None
    assert round(result.value, 3) == 0.849
    assert (result.items, result.raters, result.observed_agreement) == (11, 4, None)


def test_agreement_multi_select_is_the_set_of_options() -> None:
    labels = [
        ("i1", "ann", ["b", "a"]), ("i1", "bob", ["a", "b"]),
        ("i2", "ann", ["c"]), ("i2", "bob", ["c", "c"]),
        ("i3", "ann", ["a"]), ("i3", "bob", ["a", "c"]),
        ("i4", "ann", []), ("i4", "bob", []),
    ]  # fmt: skip
    result = agreement(labels, "categorical")
    pairs = [(("a", "b"), ("a", "b")), (("c",), ("c",)), (("a",), ("a", "c")), ((), ())]
    assert result.statistic == "cohen_kappa"
    assert result.value == cohen_kappa(pairs)
    assert result.observed_agreement == 0.75


def test_agreement_duplicate_rating_last_wins() -> None:
    first = [("i1", "ann", "x"), ("i1", "bob", "y"), ("i2", "ann", "y"), ("i2", "bob", "x")]
    corrected = [*first, ("i1", "bob", "x"), ("i2", "bob", "y")]
    assert agreement(first, "categorical").value == -1.0
    result = agreement(corrected, "categorical")
    assert (result.value, result.items, result.raters, result.observed_agreement) == (1.0, 2, 2, 1.0)


def test_agreement_text_and_bad_kind() -> None:
    result = agreement([("i1", "ann", "good"), ("i1", "bob", "fine")], "text")
    assert result == AgreementResult("none", None, 0, 2, None)
    with pytest.raises(ValueError, match="kind"):
        agreement([], "rating")


def test_agreement_undefined_and_none_values() -> None:
    # Everybody passed everything: p_e = 1, no kappa, yet p_o = 1.
    same = [(f"i{i}", r, True) for i in range(3) for r in ("ann", "bob")]
    assert agreement(same, "pass_fail") == AgreementResult("cohen_kappa", None, 3, 2, 1.0)
    assert agreement([], "categorical") == AgreementResult("fleiss_kappa", None, 0, 0, None)
    # A None value is no rating: bob's only label disappears, leaving one rater.
    result = agreement([("i1", "ann", "x"), ("i1", "bob", None)], "categorical")
    assert result == AgreementResult("fleiss_kappa", None, 0, 1, None)
