"""Schema and profile of a dataset (SPEC §5.4), kept up to date incrementally.

Pure functions and small classes; ``store/repositories/dataset_fields.py`` loads and saves
them. The unit is a *field*: a part of a record (``inputs``, ``outputs``, ``expectations``)
and a path in it:

* paths are the top-level keys, then keys of nested objects joined with ``.``, up to
  ``MAX_DEPTH`` levels; arrays are values, not descended into. A key that is not an
  identifier is quoted with backticks (a backtick doubled), like keys in filters:
  ``context.`doc.id```. In ``outputs``, the path ``""`` is the outputs value itself (it may
  be a scalar, and may be a string in one record and an object in the next);
* paths longer than ``PATH_MAX`` characters, and new fields once a part already has
  ``FIELDS_MAX``, are not tracked (the summary then says ``truncated``).

Per field, over the current records that have it (``FieldStats``):

* a count per JSON type — ``string``, ``integer`` (whole, |x| ≤ 2**53, as in
  ``store/canonical.py``), ``number``, ``boolean``, ``object``, ``array``, ``null``; the
  schema lists the types with a non-zero count;
* numbers and string lengths: count, sum, minimum and maximum **with how many values hold
  them**. Removing a value decrements; only when the last holder of the minimum (maximum)
  goes is that extreme unknown (``stale``), and the repository recomputes just that field
  from the current records. The mean is sum / count (the sum is kept in double precision);
* distinct values, by a 52-bit hash of their canonical JSON, with an adaptive distinct
  sample (Gibbons, "Distinct sampling for highly-accurate answers to distinct values
  queries", VLDB 2001): a map hash → how many current records hold the value, for the
  hashes below 2**(52 - level). At level 0 that is every value (exact); when the map would
  exceed ``DISTINCT_SAMPLE_MAX`` entries the level rises and the map keeps the half that is
  still below the bound, and the estimate is ``len(map) * 2**level`` (a few percent off).
  Removals decrement counts, so the estimate follows deletions; the level never drops.
"""

from __future__ import annotations

import hashlib
import re
from base64 import b64decode, b64encode
from collections import Counter
from collections.abc import Iterable
from functools import lru_cache
from struct import pack, unpack
from typing import Any

from store.canonical import dumps

SECTIONS = ("inputs", "outputs", "expectations")
TYPES = ("string", "integer", "number", "boolean", "object", "array", "null")
MAX_DEPTH = 5
PATH_MAX = 500
FIELDS_MAX = 1_000
DISTINCT_SAMPLE_MAX = 1_000
HASH_BITS = 52

Key = tuple[str, str]  # (section, path)
_IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]*")


def json_type(value: Any) -> str:
    kind = type(value)
    if kind is str:
        return "string"
    if kind is bool:
        return "boolean"
    if kind is int:
        return "integer"
    if kind is float:
        return "number"
    if kind is dict:
        return "object"
    if kind is list:
        return "array"
    return "null"


@lru_cache(maxsize=8192)
def quote_key(key: str) -> str:
    """A key as it appears in a field path."""
    return key if _IDENTIFIER.fullmatch(key) else "`" + key.replace("`", "``") + "`"


def split_path(path: str) -> list[str]:
    """The keys of a field path (the inverse of joining ``quote_key`` results with '.')."""
    keys: list[str] = []
    i = 0
    while i < len(path):
        if path[i] == "`":
            j, key = i + 1, []
            while True:
                end = path.index("`", j)
                key.append(path[j:end])
                if path[end + 1 : end + 2] == "`":
                    key.append("`")
                    j = end + 2
                    continue
                break
            keys.append("".join(key))
            i = end + 2  # past the closing backtick and the dot
        else:
            end = path.find(".", i)
            end = len(path) if end < 0 else end
            keys.append(path[i:end])
            i = end + 1
    return keys


def fields(section: str, value: Any, into: dict[str, list[Any]]) -> bool:
    """Append each tracked field's value of one record's ``section`` value to ``into[path]``.

    Returns False when a path was too long to track.
    """
    if section == "outputs":
        _append(into, "", value)
    if type(value) is dict:
        return _walk(value, "", 1, into)
    return True


def _append(into: dict[str, list[Any]], path: str, value: Any) -> None:
    values = into.get(path)
    if values is None:
        into[path] = [value]
    else:
        values.append(value)


def _walk(obj: dict[str, Any], prefix: str, depth: int, into: dict[str, list[Any]]) -> bool:
    complete = True
    for key, item in obj.items():
        path = prefix + quote_key(key)
        if len(path) > PATH_MAX:
            complete = False
            continue
        values = into.get(path)
        if values is None:
            into[path] = [item]
        else:
            values.append(item)
        if type(item) is dict and depth < MAX_DEPTH:
            complete = _walk(item, path + ".", depth + 1, into) and complete
    return complete


_blake2b = hashlib.blake2b
_SHIFT = 64 - HASH_BITS


def classify(value: Any) -> tuple[str, int]:
    """A value's JSON type and a 52-bit hash of its canonical JSON (scalars without building it)."""
    kind = type(value)
    if kind is str:
        name, data = "string", b"s" + value.encode("utf-8", "surrogatepass")
    elif kind is int:
        name, data = "integer", b"d" + repr(value).encode()
    elif kind is float:
        name, data = "number", b"d" + repr(value).encode()
    elif kind is bool:
        name, data = "boolean", (b"t" if value else b"f")
    elif value is None:
        name, data = "null", b"n"
    else:
        name = "object" if kind is dict else "array"
        data = b"j" + dumps(value).encode("utf-8", "surrogatepass")
    return name, int.from_bytes(_blake2b(data, digest_size=8).digest(), "big") >> _SHIFT


def _string_hashes(strings: Iterable[str]) -> list[int]:
    """``classify``'s hash of each string (a copy of the hash state after the ``s`` prefix is
    cheaper than a new hash object)."""
    out = []
    for v in strings:
        h = _copy_s()
        h.update(v.encode("utf-8", "surrogatepass"))
        out.append(_from_bytes(h.digest(), "big") >> _SHIFT)
    return out


_from_bytes = int.from_bytes
_copy_s = _blake2b(b"s", digest_size=8).copy
_CONTAINERS = (dict, list)
_classify_scalar = lru_cache(maxsize=4096, typed=True)(classify)  # numbers, booleans, null: few distinct


class Extremes:
    """Count, sum, min and max (with their holder counts) of some numbers, under removals."""

    __slots__ = ("count", "hi", "hi_n", "hi_stale", "lo", "lo_n", "lo_stale", "total")

    count: int
    total: float
    lo: Any
    lo_n: int
    hi: Any
    hi_n: int

    def __init__(self, doc: list[Any] | None = None) -> None:
        self.count, self.total, self.lo, self.lo_n, self.hi, self.hi_n = doc or (0, 0, None, 0, None, 0)
        self.lo_stale = self.hi_stale = False

    def _reset(self) -> None:
        self.count, self.total, self.lo, self.lo_n, self.hi, self.hi_n = 0, 0, None, 0, None, 0
        self.lo_stale = self.hi_stale = False

    def add_many(self, xs: list[Any]) -> None:
        self.count += len(xs)
        self.total += sum(xs)
        lo, hi = min(xs), max(xs)
        if self.lo is None or lo < self.lo:
            self.lo, self.lo_n, self.lo_stale = lo, xs.count(lo), False
        elif lo == self.lo:
            self.lo_n = xs.count(lo) + (0 if self.lo_stale else self.lo_n)
            self.lo_stale = False
        if self.hi is None or hi > self.hi:
            self.hi, self.hi_n, self.hi_stale = hi, xs.count(hi), False
        elif hi == self.hi:
            self.hi_n = xs.count(hi) + (0 if self.hi_stale else self.hi_n)
            self.hi_stale = False

    def remove_many(self, xs: list[Any]) -> None:
        self.count -= len(xs)
        if self.count <= 0:
            self._reset()
            return
        self.total -= sum(xs)
        if not self.lo_stale and (gone := xs.count(self.lo)):
            self.lo_n -= gone
            self.lo_stale = self.lo_n <= 0
        if not self.hi_stale and (gone := xs.count(self.hi)):
            self.hi_n -= gone
            self.hi_stale = self.hi_n <= 0

    @property
    def stale(self) -> bool:
        return self.count > 0 and (self.lo_stale or self.hi_stale)

    def reset_extremes(self, lo: float, lo_n: int, hi: float, hi_n: int) -> None:
        """The true extremes, recomputed from the current records."""
        self.lo, self.lo_n, self.hi, self.hi_n = lo, lo_n, hi, hi_n
        self.lo_stale = self.hi_stale = False

    def doc(self) -> list[Any] | None:
        return [self.count, self.total, self.lo, self.lo_n, self.hi, self.hi_n] if self.count else None

    def summary(self) -> list[Any] | None:
        return [self.count, self.lo, self.hi, self.total / self.count] if self.count else None


def _drop(types: dict[str, int], kind: str, n: int) -> None:
    left = types.get(kind, 0) - n
    if left > 0:
        types[kind] = left
    else:
        types.pop(kind, None)


class FieldStats:
    """What is kept about one field (see the module docstring); ``doc`` is its stored form."""

    __slots__ = ("lengths", "level", "numbers", "sample", "types")

    def __init__(self, doc: dict[str, Any] | None = None) -> None:
        doc = doc or {}
        self.types: dict[str, int] = dict(doc.get("t") or {})
        self.numbers = Extremes(doc.get("num"))
        self.lengths = Extremes(doc.get("len"))
        self.level: int = doc.get("lv", 0)
        packed = doc.get("s")
        if packed is not None:
            raw = b64decode(packed)
            numbers = unpack(f"<{len(raw) // 8}Q", raw)
            half = len(numbers) // 2
            self.sample: dict[int, int] = dict(zip(numbers[:half], numbers[half:], strict=True))
        else:  # the form written before the packed one
            self.sample = dict(zip(doc.get("h") or (), doc.get("c") or (), strict=True))

    @property
    def count(self) -> int:
        return sum(self.types.values())

    def add(self, values: list[Any]) -> None:
        """Count ``values`` (of records that now have this field) in."""
        types, sample = self.types, self.sample
        bound = 1 << (HASH_BITS - self.level)
        strings = [v for v in values if type(v) is str]  # the common case: each distinct string hashed once
        if strings:
            types["string"] = types.get("string", 0) + len(strings)
            counted = Counter(strings)
            for h, n in zip(_string_hashes(counted), counted.values(), strict=True):
                if h < bound:
                    sample[h] = sample.get(h, 0) + n
            self.lengths.add_many([len(v) for v in strings])
        if len(strings) < len(values):
            numbers = []
            for value in values:
                if type(value) is str:
                    continue
                kind, h = classify(value) if type(value) in _CONTAINERS else _classify_scalar(value)
                types[kind] = types.get(kind, 0) + 1
                if kind in ("integer", "number"):
                    numbers.append(value)
                if h < bound:
                    sample[h] = sample.get(h, 0) + 1
            if numbers:
                self.numbers.add_many(numbers)
        while len(self.sample) > DISTINCT_SAMPLE_MAX:
            self.level += 1
            bound = 1 << (HASH_BITS - self.level)
            self.sample = {k: n for k, n in self.sample.items() if k < bound}

    def remove(self, values: list[Any]) -> None:
        """Count ``values`` (of records that no longer have this field) out."""
        types, sample, numbers, lengths = self.types, self.sample, [], []
        counted: dict[int, int] = {}  # hash -> how many values of it go
        strings = [v for v in values if type(v) is str]
        if strings:
            _drop(types, "string", len(strings))
            by_value = Counter(strings)
            counted.update(zip(_string_hashes(by_value), by_value.values(), strict=True))
            lengths = [len(v) for v in strings]
        if len(strings) < len(values):
            for value in values:
                if type(value) is str:
                    continue
                kind, h = classify(value) if type(value) in _CONTAINERS else _classify_scalar(value)
                _drop(types, kind, 1)
                if kind in ("integer", "number"):
                    numbers.append(value)
                counted[h] = counted.get(h, 0) + 1
        for h, n in counted.items():
            held = sample.get(h)
            if held is not None:
                if held > n:
                    sample[h] = held - n
                else:
                    del sample[h]
        if numbers:
            self.numbers.remove_many(numbers)
        if lengths:
            self.lengths.remove_many(lengths)

    def doc(self) -> dict[str, Any]:
        """The stored form. The distinct sample is packed (``s``: base64 of the sorted hashes,
        then their counts, as little-endian 64-bit integers): a JSON array of up to 2,000
        numbers per field cost more to write, parse and store than the whole rest of the field's
        upkeep. (Documents with the sample as two arrays ``h`` and ``c`` are still read.)"""
        hashes = sorted(self.sample)
        sample = self.sample
        return {
            "t": self.types,
            "num": self.numbers.doc(),
            "len": self.lengths.doc(),
            "lv": self.level,
            "s": b64encode(pack(f"<{2 * len(hashes)}Q", *hashes, *[sample[h] for h in hashes])).decode("ascii"),
        }

    def summary(self) -> dict[str, Any]:
        """What the dataset row keeps for reads (GetDataset renders schema and profile from it)."""
        return {
            "n": self.count,
            "t": {t: self.types[t] for t in TYPES if self.types.get(t)},
            "num": self.numbers.summary(),
            "len": self.lengths.summary(),
            "d": len(self.sample) << self.level,
            "x": self.level == 0,
        }


class ProfileDelta:
    """The field values one call adds to and removes from the current records, by part and path."""

    def __init__(self) -> None:
        self.added: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
        self.removed: dict[str, dict[str, list[Any]]] = {s: {} for s in SECTIONS}
        self.truncated = False

    def add(self, section: str, value: Any) -> None:
        if not fields(section, value, self.added[section]):
            self.truncated = True

    def remove(self, section: str, value: Any) -> None:
        if not fields(section, value, self.removed[section]):
            self.truncated = True

    def keys(self) -> set[Key]:
        return {(s, p) for part in (self.added, self.removed) for s in SECTIONS for p in part[s]}


def apply(delta: ProfileDelta, stats: dict[Key, FieldStats], summary: dict[str, Any]) -> tuple[set[Key], list[Key]]:
    """Apply ``delta`` to ``stats`` (the stored stats of the keys it touches, missing = new).

    ``summary`` is the dataset's stored summary (for the per-part field counts); it gets
    ``truncated`` set when new fields had to be skipped. Returns the keys whose stats
    changed and those whose extremes must be recomputed from the current records.
    """
    for section in SECTIONS:
        for path, values in delta.removed[section].items():
            found = stats.get((section, path))
            if found is not None:
                found.remove(values)
    counts = {s: len(summary.get(s) or {}) for s in SECTIONS}
    for section in SECTIONS:
        for path, values in sorted(delta.added[section].items()):
            found = stats.get((section, path))
            if found is None:
                if counts[section] >= FIELDS_MAX:
                    summary["truncated"] = True
                    continue
                counts[section] += 1
                found = stats[(section, path)] = FieldStats()
            found.add(values)
    if delta.truncated:
        summary["truncated"] = True
    touched = {k for k in delta.keys() if k in stats}  # noqa: SIM118 - ProfileDelta is no dict
    stale = sorted(k for k in touched if stats[k].numbers.stale or stats[k].lengths.stale)
    return touched, stale


def render_summary(summary: dict[str, Any], stats: dict[Key, FieldStats], touched: Iterable[Key]) -> None:
    """Replace the entries of ``touched`` fields in the dataset's summary (drop empty ones)."""
    for section, path in touched:
        part = summary.setdefault(section, {})
        field = stats[(section, path)]
        if field.count:
            part[path] = field.summary()
        else:
            part.pop(path, None)
