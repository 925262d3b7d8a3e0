"""SQLAlchemy 2 typed models, one module per aggregate. Importing this package registers all
tables on ``Base.metadata`` (what Alembic and the schema test compare against)."""

from store.orm.base import Base
from store.orm.datasets import (
    DatasetExperimentRow,
    DatasetFieldRow,
    DatasetRecordRow,
    DatasetRow,
    DatasetTagRow,
    DatasetVersionRow,
)
from store.orm.experiments import ExperimentRow, ExperimentTagRow
from store.orm.labeling import (
    LabelingItemRaterRow,
    LabelingItemRow,
    LabelingLabelRow,
    LabelingLeaseRow,
    LabelingSessionRow,
    LabelingSessionSchemaRow,
    LabelSchemaRow,
)
from store.orm.models import (
    LoggedModelLatestMetricRow,
    LoggedModelMetricRow,
    LoggedModelNameRow,
    LoggedModelParamRow,
    LoggedModelRow,
    LoggedModelTagRow,
)
from store.orm.runs import (
    RunLatestMetricRow,
    RunMetricRow,
    RunParamRow,
    RunResultNameRow,
    RunResultPairRow,
    RunResultStateRow,
    RunRow,
    RunTagRow,
    TraceRunLinkRow,
)
from store.orm.system import RequestIdRow, ServiceSettingRow
from store.orm.traces import AssessmentRow, SpanRow, TraceMetadataRow, TraceRow, TraceTagRow

__all__ = [
    "AssessmentRow",
    "Base",
    "DatasetExperimentRow",
    "DatasetFieldRow",
    "DatasetRecordRow",
    "DatasetRow",
    "DatasetTagRow",
    "DatasetVersionRow",
    "ExperimentRow",
    "ExperimentTagRow",
    "LabelSchemaRow",
    "LabelingItemRaterRow",
    "LabelingItemRow",
    "LabelingLabelRow",
    "LabelingLeaseRow",
    "LabelingSessionRow",
    "LabelingSessionSchemaRow",
    "LoggedModelLatestMetricRow",
    "LoggedModelMetricRow",
    "LoggedModelNameRow",
    "LoggedModelParamRow",
    "LoggedModelRow",
    "LoggedModelTagRow",
    "RequestIdRow",
    "RunLatestMetricRow",
    "RunMetricRow",
    "RunParamRow",
    "RunResultNameRow",
    "RunResultPairRow",
    "RunResultStateRow",
    "RunRow",
    "RunTagRow",
    "ServiceSettingRow",
    "SpanRow",
    "TraceMetadataRow",
    "TraceRow",
    "TraceRunLinkRow",
    "TraceTagRow",
]
