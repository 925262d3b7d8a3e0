"""``ShapeCache``: one build per key, a failed build keeps nothing, and the size is bounded."""

from __future__ import annotations

import pytest

from store.query.raw import ShapeCache


def test_a_key_is_built_once_and_a_failed_build_is_not_kept() -> None:
    cache: ShapeCache[str] = ShapeCache(size=8)
    builds: list[str] = []

    def build(value: str) -> str:
        builds.append(value)
        return value

    assert cache.get("a", lambda: build("A")) == "A"
    assert cache.get("a", lambda: build("other")) == "A"
    assert builds == ["A"]

    def fail() -> str:
        raise ValueError("bad filter")

    with pytest.raises(ValueError):
        cache.get("b", fail)
    assert cache.get("b", lambda: build("B")) == "B"
    assert builds == ["A", "B"]


def test_when_full_it_starts_over() -> None:
    cache: ShapeCache[int] = ShapeCache(size=2)
    for key in range(3):
        cache.get(key, lambda key=key: key)
    rebuilt: list[int] = []
    assert cache.get(0, lambda: rebuilt.append(0) or 0) == 0  # dropped when the third came in
    assert cache.get(2, lambda: rebuilt.append(2) or 2) == 2
    assert rebuilt == [0]
