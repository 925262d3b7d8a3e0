"""Plain Python values <-> protobuf messages.

* :func:`to_value` / :func:`from_value`: any JSON-like Python value <-> ``google.protobuf.Value``.
* :func:`to_struct` / :func:`from_struct`: ``dict`` <-> ``google.protobuf.Struct``.
* :func:`to_dict`: any mlgenai message -> ``dict`` with every field present: timestamps become
  timezone-aware ``datetime``, durations ``timedelta``, ``Struct``/``Value`` plain Python, enums
  their short name (``LIFECYCLE_STAGE_ACTIVE`` -> ``"ACTIVE"``), maps ``dict``.

JSON has one number type, and so does ``Value`` (a double): integers come back as ``int`` when
they are whole and within 2**53, otherwise as ``float``.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Mapping, Sequence
from typing import Any

from google.protobuf import duration_pb2, struct_pb2, timestamp_pb2
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.message import Message

_MAX_EXACT = 2**53


def to_value(obj: Any) -> struct_pb2.Value:
    """Convert a JSON-like Python value (None, bool, int, float, str, list, tuple, dict)."""
    v = struct_pb2.Value()
    if obj is None:
        v.null_value = struct_pb2.NULL_VALUE
    elif isinstance(obj, bool):
        v.bool_value = obj
    elif isinstance(obj, int | float):
        if isinstance(obj, float) and not math.isfinite(obj):
            raise ValueError(f"{obj!r} cannot be represented in JSON")
        v.number_value = obj
    elif isinstance(obj, str):
        v.string_value = obj
    elif isinstance(obj, Mapping):
        v.struct_value.CopyFrom(to_struct(obj))
    elif isinstance(obj, Sequence):
        v.list_value.values.extend(to_value(x) for x in obj)
    else:
        raise TypeError(f"cannot convert {type(obj).__name__} to google.protobuf.Value")
    return v


def to_struct(obj: Mapping[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    for key, val in obj.items():
        if not isinstance(key, str):
            raise TypeError(f"Struct keys must be str, got {type(key).__name__}")
        s.fields[key].CopyFrom(to_value(val))
    return s


def from_value(v: struct_pb2.Value) -> Any:
    kind = v.WhichOneof("kind")
    if kind is None or kind == "null_value":
        return None
    if kind == "number_value":
        n = v.number_value
        return int(n) if n.is_integer() and abs(n) <= _MAX_EXACT else n
    if kind == "struct_value":
        return from_struct(v.struct_value)
    if kind == "list_value":
        return [from_value(x) for x in v.list_value.values]
    return getattr(v, kind)


def from_struct(s: struct_pb2.Struct) -> dict[str, Any]:
    return {k: from_value(v) for k, v in s.fields.items()}


def _enum_short(desc: Any, number: int) -> str:
    value = desc.values_by_number.get(number)
    if value is None:
        return str(number)
    if number == 0 and desc.name == "SpanStatusCode":
        return "UNSET"  # OpenTelemetry's name for the zero status
    prefix = re.sub(r"(?<!^)(?=[A-Z])", "_", desc.name).upper() + "_"
    return str(value.name).removeprefix(prefix)


def _scalar(field: Any, value: Any) -> Any:
    if field.type == FieldDescriptor.TYPE_MESSAGE:
        return _message(value)
    if field.type == FieldDescriptor.TYPE_ENUM:
        return _enum_short(field.enum_type, value)
    return value


def _message(msg: Message) -> Any:
    name = msg.DESCRIPTOR.full_name
    if name == "google.protobuf.Timestamp":
        assert isinstance(msg, timestamp_pb2.Timestamp)
        if msg.seconds == 0 and msg.nanos == 0:
            return None
        return msg.ToDatetime(tzinfo=dt.UTC)
    if name == "google.protobuf.Duration":
        assert isinstance(msg, duration_pb2.Duration)
        return msg.ToTimedelta()
    if name == "google.protobuf.Struct":
        assert isinstance(msg, struct_pb2.Struct)
        return from_struct(msg)
    if name == "google.protobuf.Value":
        assert isinstance(msg, struct_pb2.Value)
        return from_value(msg)
    if name == "google.protobuf.ListValue":
        assert isinstance(msg, struct_pb2.ListValue)
        return [from_value(x) for x in msg.values]
    return to_dict(msg)


def to_dict(msg: Message) -> dict[str, Any]:
    """Every field of ``msg`` as plain Python (unset message fields and oneof members: None)."""
    out: dict[str, Any] = {}
    for field in msg.DESCRIPTOR.fields:
        value = getattr(msg, field.name)
        if field.message_type is not None and field.message_type.GetOptions().map_entry:
            vfield = field.message_type.fields_by_name["value"]
            out[field.name] = {k: _scalar(vfield, v) for k, v in value.items()}
        elif field.is_repeated:
            out[field.name] = [_scalar(field, v) for v in value]
        elif field.has_presence and not msg.HasField(field.name):  # messages, oneofs, `optional`
            out[field.name] = None
        else:
            out[field.name] = _scalar(field, value)
    return out


def to_timestamp(value: dt.datetime | int | timestamp_pb2.Timestamp) -> timestamp_pb2.Timestamp:
    """A Timestamp from a timezone-aware ``datetime``, epoch milliseconds or a Timestamp."""
    if isinstance(value, timestamp_pb2.Timestamp):
        return value
    out = timestamp_pb2.Timestamp()
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            raise ValueError("give a timezone-aware datetime")
        out.FromDatetime(value)
    else:
        out.FromMilliseconds(value)
    return out
