"""Dataset record ids (store/dataset_merge.py, ``RecordIds``): SPEC §1.2's format, ascending."""

from __future__ import annotations

import re

from store.dataset_merge import RecordIds

FORMAT = re.compile(r"dr-[0-9a-f]{32}")
NOW_MS = 1_790_000_000_123


def test_ids_of_a_call_have_the_spec_format_and_ascend() -> None:
    make = RecordIds(NOW_MS)
    ids = [make() for _ in range(1_000)]
    assert all(FORMAT.fullmatch(i) for i in ids)
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    assert all(i.startswith(f"dr-{NOW_MS:012x}") for i in ids)  # the call's time first


def test_calls_of_the_same_millisecond_get_distinct_ids() -> None:
    a, b = RecordIds(NOW_MS), RecordIds(NOW_MS)
    assert {a() for _ in range(100)}.isdisjoint({b() for _ in range(100)})


def test_later_calls_sort_after_earlier_ones() -> None:
    assert RecordIds(NOW_MS)() < RecordIds(NOW_MS + 1)()


def test_beyond_16_to_the_6_ids_the_random_digits_change() -> None:
    make = RecordIds(NOW_MS)
    first = make()
    make._next = 0x1000000
    after = make()
    assert FORMAT.fullmatch(after) and after.endswith("000000") and after[:29] != first[:29]
