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
COMPARE_CANDIDATES_MAX = 10  # candidate runs per CompareRuns
# Params and metrics of evaluation runs and logged models (SPEC §6, §7).
PARAMS_PER_CALL_MAX = 1_000  # params per create / LogParams / LogLoggedModelParams
METRICS_PER_CALL_MAX = 1_000  # metric values per LogMetrics / LogLoggedModelMetrics
PARAM_KEY_MAX = 250
PARAM_VALUE_MAX = 8_000
METRIC_NAME_MAX = 250
LINK_TRACES_MAX = 100  # trace ids per LinkTracesToRun
# QueryTraceMetrics (SPEC §9).
METRIC_EXPERIMENTS_MAX = 100
METRIC_AGGREGATIONS_MAX = 10
METRIC_DIMENSIONS_MAX = 5
METRIC_POINTS_DEFAULT = 1_000
METRIC_POINTS_MAX = 10_000  # larger requests are clamped
# Logged models (SPEC §6).
MODEL_TYPE_MAX = 256
MODEL_STATUS_MESSAGE_MAX = 1_000
MODEL_DATASET_DIGEST_MAX = 64
