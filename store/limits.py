"""Limits of SPEC §1.10, in one place. The server validates requests against them before the
database is touched; the store enforces those that need the database (tag counts)."""

from __future__ import annotations

NAME_MAX = 256
TAG_KEY_MAX = 250
TAG_VALUE_MAX = 8_000
TAGS_PER_ENTITY_MAX = 1_000
METADATA_KEY_MAX = 250
METADATA_VALUE_MAX = 8_000
ARTIFACT_LOCATION_MAX = 2_048
PAGE_SIZE_DEFAULT = 100
PAGE_SIZE_MAX = 1_000
FILTER_MAX = 10_000
ORDER_BY_ITEMS_MAX = 10
REQUEST_BYTES_MAX = 64 * 1024 * 1024
MERGE_RECORDS_MAX = 10_000
SPANS_PER_TRACE_MAX = 100_000
# Largest experiment id: ids are signed 64-bit integers.
ID_INT_MAX = 2**63 - 1
