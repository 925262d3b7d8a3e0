"""Canonical JSON: the identity of dataset records and the content behind dataset digests.

A record is identified within its dataset by ``SHA-256(canonical JSON of its inputs)``
(SPEC §5.3), so the same inputs sent by two clients, in any key order and with any
equivalent number spelling, always collide. The canonical form of a JSON value:

* objects: keys sorted by Unicode code point, at every depth; no duplicate keys;
* no insignificant whitespace: separators are exactly ``,`` and ``:``;
* strings: JSON string escapes as Python's ``json`` writes them with ``ensure_ascii=False``
  (``"``, ``\\``, and control characters escaped — ``\\n``, ``\\u0000``…; every other
  character, non-ASCII included, written as itself), then encoded as UTF-8 for hashing;
* numbers are IEEE-754 doubles (JSON has one number type, and ``google.protobuf.Value``
  carries doubles): a whole number with magnitude at most 2**53 is written as an integer
  (``1``, ``1.0`` and ``1e0`` are all ``1``; ``-0.0`` is ``0``); any other finite number in
  Python's shortest round-trip ``repr`` (``0.7``, ``1e+100``, ``9007199254740994.0``,
  ``1.5e-07``). Integers beyond 2**53 are first rounded to the nearest double, as a
  ``Value`` would carry them. NaN and infinities have no JSON form and are refused;
* ``true``, ``false``, ``null`` as such; arrays keep their order.

It is close to RFC 8785 (JCS) but not the same: keys sort by code point rather than UTF-16
unit and numbers use Python's ``repr``; both sides of every comparison here use this module.

``normalize`` brings any JSON-like Python value to the number form above; values converted
from protobuf by ``mlgenai.client.convert.from_value`` already have it, so hot paths call
``dumps`` on them directly.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping, Sequence
from json.encoder import c_make_encoder, encode_basestring  # type: ignore[attr-defined]
from typing import Any

import orjson

MAX_EXACT = 2**53


def _refuse(value: Any) -> Any:
    raise NotJson(f"{type(value).__name__} is not a JSON value")


# json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False) without
# building an encoder per call (a third of its cost for a small object): the C encoder's
# arguments are markers, default, string encoder, indent, key and item separators, sort_keys,
# skipkeys, allow_nan.
_chunks = c_make_encoder(None, _refuse, encode_basestring, None, ":", ",", True, False, False)


class NotJson(ValueError):
    """A value with no JSON form (NaN, infinity, a non-string key, an unknown type)."""


def normalize_number(value: float | int) -> float | int:
    """The canonical Python form of a number: an int when whole and within 2**53, else a float."""
    if isinstance(value, int):
        if -MAX_EXACT <= value <= MAX_EXACT:
            return value
        try:
            value = float(value)
        except OverflowError:
            raise NotJson(f"integer {str(value)[:20]}… is too large for a JSON number") from None
    if not math.isfinite(value):
        raise NotJson(f"{value!r} is not a JSON number")
    if value.is_integer() and -MAX_EXACT <= value <= MAX_EXACT:
        return int(value)
    return value


def normalize(value: Any) -> Any:
    """``value`` with every number in canonical form, mappings as dicts, sequences as lists."""
    if value is None or isinstance(value, (bool, str)):
        return value
    if isinstance(value, (int, float)):
        return normalize_number(value)
    if isinstance(value, Mapping):
        out = {}
        for key, item in value.items():
            if not isinstance(key, str):
                raise NotJson(f"object keys must be strings, got {type(key).__name__}")
            out[key] = normalize(item)
        return out
    if isinstance(value, Sequence) and not isinstance(value, (bytes, bytearray)):
        return [normalize(item) for item in value]
    raise NotJson(f"{type(value).__name__} is not a JSON value")


def _pass(value: Any) -> Any:
    raise TypeError("not a plain JSON value")


# orjson writes the same text as the encoder above, 2.5x faster with the checks below (1.35
# against 3.7 µs for a benchmark record's content, 0.5 against 1.2 for its inputs), except
# where its output carries one of these marks: numbers under 1e-4 in magnitude (``0.00001``,
# ``1.5e-7`` against ``1e-05``, ``1.5e-07``) and NaN or infinities (``null``; refused here).
# It refuses outright lone surrogates, integers beyond 64 bits, objects nested beyond 254
# levels and, with these options, subclasses of str/int/dict/list, dataclasses and dates.
# Either way the encoder above decides. A string holding a mark (``"null"``, ``"1e-3"``) only
# costs that slower path. (orjson would also write enums and UUIDs, which the encoder above
# refuses: no value made from JSON or protobuf holds one.)
# tests/unit/test_canonical.py compares the two on generated values and on every edge above.
_ORJSON_OPTIONS = (
    orjson.OPT_SORT_KEYS
    | orjson.OPT_PASSTHROUGH_SUBCLASS
    | orjson.OPT_PASSTHROUGH_DATACLASS
    | orjson.OPT_PASSTHROUGH_DATETIME
)
_NEGATIVE_EXPONENT = re.compile(r"[0-9]e-").search


def dumps(value: Any) -> str:
    """The canonical JSON text of an already normalized value (plain dicts, lists, strings,
    ints, floats, booleans and None)."""
    if type(value) is str:
        return encode_basestring(value)
    try:
        text = orjson.dumps(value, _pass, _ORJSON_OPTIONS).decode()
    except TypeError:  # orjson.JSONEncodeError included
        return reference_dumps(value)
    # (substring tests on str: a regex, or the same tests on bytes, cost more than orjson)
    if "null" in text or "0.0000" in text or ("e-" in text and _NEGATIVE_EXPONENT(text)):
        return reference_dumps(value)
    return text


def reference_dumps(value: Any) -> str:
    """``dumps`` by the standard library's C encoder: the definition of the canonical text."""
    return "".join(_chunks(value, 0))


def canonical_json(value: Any) -> str:
    """The canonical JSON text of any JSON-like value."""
    return dumps(normalize(value))


def sha256_hex(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def identity(inputs: Mapping[str, Any]) -> str:
    """A record's identity within its dataset: SHA-256 (hex) of its inputs' canonical JSON."""
    return sha256_hex(canonical_json(inputs))
