"""Field aggregates of store/dataset_stats.py against brute force, without a database."""

from __future__ import annotations

import json
from collections import Counter
from typing import Any

from hypothesis import given, settings, strategies as st

from store.dataset_stats import DISTINCT_SAMPLE_MAX, FieldStats, ProfileDelta, quote_key, split_path

VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-5, 5),
    st.floats(-10, 10, allow_nan=False).map(lambda f: f if not f.is_integer() else f + 0.5),
    st.text(alphabet="ab", max_size=3),
    st.lists(st.integers(0, 2), max_size=2),
)


@settings(max_examples=200)
@given(st.lists(st.text(max_size=5), min_size=1, max_size=4))
def test_field_paths_split_back_into_their_keys(keys: list[str]) -> None:
    assert split_path(".".join(quote_key(k) for k in keys)) == keys


def test_path_quoting() -> None:
    assert [quote_key(k) for k in ("answer", "doc.id", "", "a`b", "x y", "_a-1", "1a")] == [
        "answer", "`doc.id`", "``", "`a``b`", "`x y`", "_a-1", "`1a`",
    ]  # fmt: skip


def recompute_if_stale(stats: FieldStats, current: list[Any]) -> None:
    """What the repository does when the last holder of an extreme went."""
    for extremes, xs in (
        (stats.numbers, [v for v in current if type(v) in (int, float)]),
        (stats.lengths, [len(v) for v in current if isinstance(v, str)]),
    ):
        if extremes.stale:
            lo, hi = min(xs), max(xs)
            extremes.reset_extremes(lo, xs.count(lo), hi, xs.count(hi))


@settings(max_examples=300)
@given(st.lists(st.tuples(st.lists(VALUES, max_size=6), st.lists(st.integers(0, 30), max_size=4)), max_size=8))
def test_incremental_stats_equal_brute_force(steps: list[tuple[list[Any], list[int]]]) -> None:
    stats = FieldStats()
    current: list[Any] = []
    for added, removals in steps:
        doomed = sorted({i % len(current) for i in removals}, reverse=True) if current else []
        removed = [current.pop(i) for i in doomed]  # by position: 0 == False to list.remove
        stats = FieldStats(json.loads(json.dumps(stats.doc())))  # through its stored form
        if removed:
            stats.remove(removed)
        if added:
            stats.add(added)
        current += added
        recompute_if_stale(stats, current)
        check(stats, current)


def check(stats: FieldStats, current: list[Any]) -> None:
    kinds = Counter(
        "boolean" if isinstance(v, bool) else "integer" if isinstance(v, int) else "number"
        if isinstance(v, float) else "string" if isinstance(v, str) else "array" if isinstance(v, list) else "null"
        for v in current
    )  # fmt: skip
    summary = stats.summary()
    assert summary["n"] == len(current) and summary["t"] == dict(kinds)
    numbers = [v for v in current if type(v) in (int, float)]
    lengths = [len(v) for v in current if isinstance(v, str)]
    for got, xs in ((summary["num"], numbers), (summary["len"], lengths)):
        if not xs:
            assert got is None
            continue
        count, lo, hi, mean = got
        assert (count, lo, hi) == (len(xs), min(xs), max(xs))
        assert abs(mean - sum(xs) / len(xs)) < 1e-9
    assert summary["x"] is True and summary["d"] == len({json.dumps(v) for v in current})


def test_distinct_values_estimated_beyond_1000_and_followed_through_removals() -> None:
    stats = FieldStats()
    stats.add([f"value-{i}" for i in range(DISTINCT_SAMPLE_MAX)])
    assert (stats.summary()["d"], stats.summary()["x"]) == (DISTINCT_SAMPLE_MAX, True)
    stats.add([f"value-{i}" for i in range(DISTINCT_SAMPLE_MAX, 20_000)] + ["value-1"] * 50)
    summary = stats.summary()
    assert summary["x"] is False and abs(summary["d"] - 20_000) < 2_000
    stats.remove([f"value-{i}" for i in range(10_000)])
    assert abs(stats.summary()["d"] - 10_000) < 1_500 and stats.summary()["n"] == 10_050


def test_delta_collects_nested_paths_and_the_outputs_root() -> None:
    delta = ProfileDelta()
    delta.add("outputs", {"a": {"b.c": 1}, "list": [{"x": 1}]})
    delta.add("outputs", "text")
    delta.add("inputs", {"q": "x"})
    assert delta.added["outputs"] == {
        "": [{"a": {"b.c": 1}, "list": [{"x": 1}]}, "text"],
        "a": [{"b.c": 1}],
        "a.`b.c`": [1],
        "list": [[{"x": 1}]],
    }
    assert delta.keys() == {
        ("outputs", ""),
        ("outputs", "a"),
        ("outputs", "a.`b.c`"),
        ("outputs", "list"),
        ("inputs", "q"),
    }
