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
DATASET_EXPERIMENT_IDS_MAX = 100  # experiment ids per dataset call (create, add, remove, search)
DATASET_TRACES_MAX = 1_000  # trace ids per CreateRecordsFromTraces
SPANS_PER_TRACE_MAX = 100_000
SPANS_PER_CALL_MAX = 10_000
BATCH_GET_TRACES_MAX = 500
SEARCH_EXPERIMENTS_MAX = 100
DELETE_TRACES_MAX = 10_000
ASSESSMENTS_PER_BATCH_MAX = 1_000
SPAN_NAME_MAX = 1_000
SPAN_TYPE_MAX = 64
TEXT_MAX = 8_000
PROMOTED_MAX = 250
# Largest experiment id: ids are signed 64-bit integers.
ID_INT_MAX = 2**63 - 1
