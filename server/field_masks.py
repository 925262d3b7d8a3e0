"""Update masks (SPEC §1.9).

Each Update RPC declares its mutable paths and its output-only paths. A mask path that is
mutable is applied; an output-only path is ignored; anything else (immutable fields, unknown
names) is INVALID_ARGUMENT naming the path. An empty mask means "every mutable field that is
set (non-default) in the resource message".
"""

from __future__ import annotations

from collections.abc import Collection

from google.protobuf.field_mask_pb2 import FieldMask
from google.protobuf.message import Message

from store.errors import FieldViolation, InvalidArgument


def mask_paths(
    mask: FieldMask, resource: Message, *, mutable: Collection[str], output_only: Collection[str]
) -> set[str]:
    """The mutable paths to apply, after validating ``mask`` against the rules above."""
    if not mask.paths:
        return {p for p in mutable if _is_set(resource, p)}
    bad = [p for p in mask.paths if p not in mutable and p not in output_only]
    if bad:
        allowed = ", ".join(sorted(mutable))
        raise InvalidArgument(
            "INVALID_FIELD",
            f"update_mask: cannot update {', '.join(bad)} (mutable: {allowed})",
            [FieldViolation("update_mask", f"path {p!r} is not mutable (mutable: {allowed})") for p in bad],
        )
    return {p for p in mask.paths if p in mutable}


def _is_set(resource: Message, path: str) -> bool:
    field = resource.DESCRIPTOR.fields_by_name.get(path)
    if field is None:
        return False
    value = getattr(resource, path)
    if field.message_type is not None and not field.message_type.GetOptions().map_entry and not field.is_repeated:
        return resource.HasField(path)
    return bool(value)
