"""google.protobuf ``Struct`` and ``Value`` as plain Python values, for ingestion (spans and
dataset records).

A value comes out as JSON would carry it: a dict, a list, a str, a bool, None, or a number, which
is an int when it is integral and within ±2**53 and a float otherwise. NaN and ±Infinity raise
``NotFinite`` (JSON and PostgreSQL's jsonb cannot hold them). With ``reject_nul``, a string or a
key holding U+0000 raises ``HasNul`` (PostgreSQL's text cannot hold it).

The work is done by the C module ``server._pbvalues`` on the message's serialized bytes: 11
against 49 µs (serializing included) for the attributes of a benchmark span, whose values
LogSpans used to walk one ``WhichOneof`` at a time (40% of its interpreter time). Where that
module was not built (no C compiler at install), the same values come from
``plain_struct``/``plain_value``, the walk that is also the reference the module is tested
against.
"""

from __future__ import annotations

import math
from typing import Any

from google.protobuf import struct_pb2

try:
    from server import _pbvalues  # type: ignore[attr-defined]
except ImportError:  # pragma: no cover - the install had no C compiler
    _pbvalues = None

_EXACT = 2**53
NUL_MESSAGE = "must not contain the NUL character"
NUL_KEY_MESSAGE = "keys must not contain the NUL character"
NOT_FINITE_MESSAGE = "numbers must be finite (NaN and infinities have no JSON form)"


class NotFinite(ValueError):
    """A NaN or ±Infinity number."""


class HasNul(ValueError):
    """A string or key holding U+0000 (with ``reject_nul``)."""


def native() -> bool:
    """Whether the C module does the work."""
    return _pbvalues is not None


def module() -> Any:
    """The C module, or None where it was not built (for OTLP's readers and writers)."""
    return _pbvalues


# -- the reference walk --------------------------------------------------------------------------


def plain_value(v: struct_pb2.Value, reject_nul: bool = False) -> Any:
    """``v`` as a plain Python value, read field by field."""
    kind = v.WhichOneof("kind")
    if kind == "string_value":
        text = v.string_value
        if reject_nul and "\x00" in text:
            raise HasNul(NUL_MESSAGE)
        return text
    if kind == "number_value":
        n = v.number_value
        if n.is_integer():
            return int(n) if -_EXACT <= n <= _EXACT else n
        if not math.isfinite(n):  # (infinities are not integers)
            raise NotFinite(NOT_FINITE_MESSAGE)
        return n
    if kind == "struct_value":
        return plain_struct(v.struct_value, reject_nul)
    if kind == "bool_value":
        return v.bool_value
    if kind == "list_value":
        return [plain_value(x, reject_nul) for x in v.list_value.values]
    return None


def plain_struct(s: struct_pb2.Struct, reject_nul: bool = False) -> dict[str, Any]:
    """``s`` as a dict, read field by field."""
    fields = s.fields
    out: dict[str, Any] = {}
    for key in fields:  # 3x faster than .items() on protobuf maps
        out[key] = plain_value(fields[key], reject_nul)
        if reject_nul and "\x00" in key:
            raise HasNul(NUL_KEY_MESSAGE)
    return out


# -- the entry points ----------------------------------------------------------------------------


def struct_of(s: struct_pb2.Struct, reject_nul: bool = False) -> dict[str, Any]:
    """``plain_struct(s, reject_nul)``, by the C module where it is built."""
    if _pbvalues is None:
        return plain_struct(s, reject_nul)
    try:
        return _pbvalues.struct(s.SerializeToString(), reject_nul=reject_nul)  # type: ignore[no-any-return]
    except _pbvalues.NotFinite as exc:
        raise NotFinite(str(exc)) from None
    except _pbvalues.HasNul as exc:
        raise HasNul(str(exc)) from None


def value_of(v: struct_pb2.Value, reject_nul: bool = False) -> Any:
    """``plain_value(v, reject_nul)``, by the C module where it is built."""
    if _pbvalues is None:
        return plain_value(v, reject_nul)
    try:
        return _pbvalues.value(v.SerializeToString(), reject_nul=reject_nul)
    except _pbvalues.NotFinite as exc:
        raise NotFinite(str(exc)) from None
    except _pbvalues.HasNul as exc:
        raise HasNul(str(exc)) from None


class Fields:
    """Some singular ``Struct`` and ``Value`` fields of one message type, read together."""

    def __init__(self, descriptor: Any, *names: str) -> None:
        """The fields ``names`` of the message type ``descriptor`` (each a ``Struct`` or a ``Value``)."""
        kinds = {"google.protobuf.Struct": "s", "google.protobuf.Value": "v"}
        fields = [descriptor.fields_by_name[name] for name in names]
        self.spec = tuple((f.name, kinds[f.message_type.full_name]) for f in fields)
        self._numbers = tuple((f.number, kinds[f.message_type.full_name]) for f in fields)

    def of(self, message: Any, serialized: bytes) -> tuple[Any, ...]:
        """The fields' plain values, in ``spec``'s order: an absent ``Value`` is None, an absent
        ``Struct`` an empty dict. ``serialized`` is ``message.SerializeToString()``, which the
        C module reads in one pass."""
        if _pbvalues is None:
            return tuple(
                plain_struct(getattr(message, name))
                if kind == "s"
                else (plain_value(getattr(message, name)) if message.HasField(name) else None)
                for name, kind in self.spec
            )
        try:
            return _pbvalues.fields(serialized, self._numbers)  # type: ignore[no-any-return]
        except _pbvalues.NotFinite as exc:
            raise NotFinite(str(exc)) from None
