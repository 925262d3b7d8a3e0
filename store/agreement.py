"""Inter-rater agreement statistics for labeling sessions (pure Python, standard library only).

**Cohen's kappa** (Cohen 1960): two raters, over the items both of them rated. With ``N``
items, ``agree`` of them given the same category, and ``a_k``/``b_k`` the number of items
rater A/B put in category ``k``::

    p_o = agree / N          p_e = Σ_k a_k·b_k / N²          κ = (p_o − p_e) / (1 − p_e)

**Fleiss' kappa** (Fleiss 1971): any number of raters per item, not necessarily the same
people. With ``n_ij`` the ratings of item ``i`` in category ``j`` and ``n_i = Σ_j n_ij``::

    P_i = Σ_j n_ij(n_ij − 1) / (n_i(n_i − 1))      P̄ = mean of P_i
    p_j = Σ_i n_ij / Σ_i n_i                       P̄e = Σ_j p_j²
    κ = (P̄ − P̄e) / (1 − P̄e)

``n_i`` may vary between items (items with fewer than two ratings are ignored); with a
constant ``n_i`` this is exactly Fleiss (1971). For two raters it is Scott's pi, not Cohen's
kappa: chance agreement comes from the pooled category shares, not from each rater's own.

**Krippendorff's alpha** (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"),
coincidence-matrix form. A unit is the list of values it received (a missing rating is
simply absent; ``None`` values are dropped as missing too). A unit with ``m_u ≥ 2`` values
adds each ordered pair of two of its values, with weight ``1/(m_u − 1)``, to the coincidences
``o_ck``; units with fewer than two values are not pairable and are ignored. ``n_c = Σ_k o_ck``
is the number of pairable values equal to ``c`` and ``n = Σ_c n_c``::

    D_o = Σ_c Σ_k o_ck·δ²(c, k) / n      D_e = Σ_c Σ_k n_c·n_k·δ²(c, k) / (n(n − 1))
    α = 1 − D_o / D_e

Metrics: nominal ``δ² = [c ≠ k]``; interval ``(c − k)²``; ordinal
``(Σ_{g=c..k} n_g − (n_c + n_k)/2)²``; ratio ``((c − k)/(c + k))²``. The double sums are not
evaluated literally: for nominal and interval they reduce to per-unit counts and sums of
squares, because over the ordered pairs of ``m`` values ``Σ (x − y)² = 2m·Σ (x − x̄)²``
(O(values)). Ordinal is interval on the mid-ranks ``r_c = Σ_{g<c} n_g + n_c/2``, since
``Σ_{g=c..k} n_g − (n_c + n_k)/2 = r_k − r_c``. Ratio pairs the distinct values
(O(distinct²)).

A statistic that is undefined is ``None``, never NaN: no usable items, or chance agreement
that leaves nothing to correct (``p_e = 1``, ``P̄e = 1``, ``D_e = 0`` — e.g. everybody used
one and the same category throughout).

``agreement`` applies these to a labeling session's ``(item_id, rater_id, value)`` triples.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass
from fractions import Fraction
from numbers import Real
from typing import Any

LEVELS = ("nominal", "ordinal", "interval", "ratio")
KINDS = ("categorical", "pass_fail", "numeric", "text")


@dataclass(frozen=True, slots=True)
class AgreementResult:
    statistic: str  # "cohen_kappa" | "fleiss_kappa" | "krippendorff_alpha" | "none"
    value: float | None
    items: int  # items (units) that counted
    raters: int  # distinct raters seen
    observed_agreement: float | None  # p_o (Cohen) or P̄ (Fleiss); None for alpha


# --- kappas -------------------------------------------------------------------------------


def _cohen(pairs: Sequence[tuple[Hashable, Hashable]]) -> tuple[float | None, float | None]:
    """(κ, p_o), computed in integers: κ = (N·agree − Σ a_k b_k) / (N² − Σ a_k b_k)."""
    n = len(pairs)
    if n == 0:
        return None, None
    agree = sum(a == b for a, b in pairs)
    first, second = Counter(a for a, _ in pairs), Counter(b for _, b in pairs)
    chance = sum(count * second[category] for category, count in first.items())
    p_o = agree / n
    if chance == n * n:
        return None, p_o
    return (n * agree - chance) / (n * n - chance), p_o


def _fleiss(items: Iterable[Sequence[Hashable]]) -> tuple[float | None, float | None, int]:
    """(κ, P̄, items counted), exact in fractions: P̄ sums the P_i numerators per n_i."""
    agreeing_by_n: Counter[int] = Counter()  # n_i -> Σ_j n_ij(n_ij − 1) over the items with that n_i
    totals: Counter[Hashable] = Counter()  # category -> Σ_i n_ij
    counted = 0
    for ratings in items:
        if len(ratings) < 2:
            continue
        counts = Counter(ratings)
        agreeing_by_n[len(ratings)] += sum(c * (c - 1) for c in counts.values())
        totals.update(counts)
        counted += 1
    if counted == 0:
        return None, None, 0
    p_bar = sum((Fraction(s, m * (m - 1)) for m, s in agreeing_by_n.items()), Fraction(0)) / counted
    ratings_total = sum(totals.values())
    p_e = Fraction(sum(c * c for c in totals.values()), ratings_total * ratings_total)
    if p_e == 1:
        return None, float(p_bar), counted
    return float((p_bar - p_e) / (1 - p_e)), float(p_bar), counted


def cohen_kappa(pairs: Sequence[tuple[Hashable, Hashable]]) -> float | None:
    """Cohen's kappa of two raters; ``pairs`` holds (rater A's category, rater B's) per item."""
    return _cohen(pairs)[0]


def fleiss_kappa(items: Sequence[Sequence[Hashable]]) -> float | None:
    """Fleiss' kappa; each item is the list of categories its raters assigned."""
    return _fleiss(items)[0]


# --- Krippendorff's alpha -----------------------------------------------------------------


def _number(value: Any) -> float:
    if not isinstance(value, Real):
        raise TypeError(f"interval, ordinal and ratio alpha need numbers, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(f"not a finite number: {value!r}")
    return number


def _sum_of_squares(values: Sequence[float]) -> float:
    """Σ (x − x̄)², two-pass (no cancellation); exactly 0 when the values are all equal (or none)."""
    if not values or min(values) == max(values):
        return 0.0
    mean = math.fsum(values) / len(values)
    return math.fsum((x - mean) ** 2 for x in values)


def _alpha_nominal(units: list[list[Any]]) -> float | None:
    # Σ_{c≠k} o_ck = Σ_u (m_u² − Σ_c n_uc²)/(m_u − 1), exact per m_u; Σ_{c≠k} n_c n_k = n² − Σ_c n_c².
    disagreeing_by_m: Counter[int] = Counter()
    totals: Counter[Hashable] = Counter()
    for unit in units:
        counts = Counter(unit)
        disagreeing_by_m[len(unit)] += len(unit) ** 2 - sum(c * c for c in counts.values())
        totals.update(counts)
    n = sum(totals.values())
    expected = n * n - sum(c * c for c in totals.values())
    if expected == 0:
        return None
    observed = sum((Fraction(s, m - 1) for m, s in disagreeing_by_m.items()), Fraction(0))
    return float(1 - (n - 1) * observed / expected)


def _alpha_interval(units: list[list[float]]) -> float | None:
    # D_o / D_e = (n − 1)·Σ_u m_u·SS_u/(m_u − 1) / (n·SS), SS over all pairable values.
    pooled = [x for unit in units for x in unit]
    n = len(pooled)
    expected = n * _sum_of_squares(pooled)
    if expected == 0:
        return None
    observed = math.fsum(len(u) * _sum_of_squares(u) / (len(u) - 1) for u in units)
    return 1 - (n - 1) * observed / expected


def _ranks(units: list[list[Any]]) -> list[list[float]]:
    """Each value replaced by its mid-rank r_c = Σ_{g<c} n_g + n_c/2 among the pairable values."""
    totals = Counter(x for unit in units for x in unit)
    rank: dict[Any, float] = {}
    below = 0
    for value in sorted(totals):
        rank[value] = below + totals[value] / 2
        below += totals[value]
    return [[rank[x] for x in unit] for unit in units]


def _alpha_by_metric(units: list[list[float]], delta2: Callable[[float, float], float]) -> float | None:
    # Literal coincidence sums, over the distinct values of each unit and of the whole data.
    observed = 0.0
    totals: Counter[float] = Counter()
    for unit in units:
        counts = Counter(unit)
        totals.update(counts)
        pairs = math.fsum(counts[c] * counts[k] * delta2(c, k) for c in counts for k in counts if c != k)
        observed += pairs / (len(unit) - 1)
    n = sum(totals.values())
    expected = math.fsum(totals[c] * totals[k] * delta2(c, k) for c in totals for k in totals if c != k)
    if expected == 0:
        return None
    return 1 - (n - 1) * observed / expected


def _ratio_delta2(c: float, k: float) -> float:
    return ((c - k) / (c + k)) ** 2 if c + k else 0.0


def krippendorff_alpha(units: Sequence[Sequence[Any]], level: str = "interval") -> float | None:
    """Krippendorff's alpha; each unit is the list of values it received.

    ``level`` is "nominal" (hashable values), "ordinal" (values that sort), "interval" or
    "ratio" (real numbers; ratio needs them ≥ 0).
    """
    if level not in LEVELS:
        raise ValueError(f"level must be one of {', '.join(LEVELS)}, got {level!r}")
    pairable = [kept for unit in units if len(kept := [x for x in unit if x is not None]) >= 2]
    if level == "nominal":
        return _alpha_nominal(pairable)
    if level == "ordinal":
        return _alpha_interval(_ranks(pairable))
    numbers = [[_number(x) for x in unit] for unit in pairable]
    if level == "interval":
        return _alpha_interval(numbers)
    if any(x < 0 for unit in numbers for x in unit):
        raise ValueError("ratio alpha needs values ≥ 0")
    return _alpha_by_metric(numbers, _ratio_delta2)


# --- labeling sessions --------------------------------------------------------------------


def _category(value: Any) -> Hashable:
    """A multi-select answer (a list of options) is one category: the sorted tuple of its distinct options."""
    if isinstance(value, list | tuple | set | frozenset):
        options = set(value)
        try:
            return tuple(sorted(options))
        except TypeError:  # options of mixed types
            return tuple(sorted(options, key=repr))
    if not isinstance(value, Hashable):
        raise TypeError(f"a categorical value must be hashable or a list of options, got {type(value).__name__}")
    return value


def agreement(labels: Sequence[tuple[str, str, Any]], kind: str) -> AgreementResult:
    """Agreement of a labeling session's ``(item_id, rater_id, value)`` triples for one question.

    A rater labeling the same item twice counts once, with the last triple; a ``None`` value
    is no rating. ``kind``:

    * "categorical", "pass_fail": Cohen's kappa over the items rated by both when there are
      exactly two distinct raters, otherwise Fleiss' kappa (varying raters per item). A
      multi-select value (a list) is one category, the sorted tuple of its distinct options,
      so only identical selections agree;
    * "numeric": Krippendorff's alpha, interval metric;
    * "text": no statistic (``statistic="none"``, ``value=None``).
    """
    if kind not in KINDS:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {kind!r}")
    latest = {(item_id, rater_id): value for item_id, rater_id, value in labels}
    by_item: defaultdict[str, dict[str, Any]] = defaultdict(dict)
    for (item_id, rater_id), value in latest.items():
        if value is not None:
            by_item[item_id][rater_id] = value
    raters = list(dict.fromkeys(rater for ratings in by_item.values() for rater in ratings))

    if kind == "text":
        return AgreementResult("none", None, 0, len(raters), None)
    if kind == "numeric":
        units = [list(ratings.values()) for ratings in by_item.values()]
        alpha = krippendorff_alpha(units, "interval")
        return AgreementResult("krippendorff_alpha", alpha, sum(len(u) >= 2 for u in units), len(raters), None)

    categories = [{rater: _category(v) for rater, v in ratings.items()} for ratings in by_item.values()]
    if len(raters) == 2:
        a, b = raters
        pairs = [(item[a], item[b]) for item in categories if len(item) == 2]
        kappa, p_o = _cohen(pairs)
        return AgreementResult("cohen_kappa", kappa, len(pairs), 2, p_o)
    kappa, p_bar, counted = _fleiss(list(item.values()) for item in categories)
    return AgreementResult("fleiss_kappa", kappa, counted, len(raters), p_bar)
