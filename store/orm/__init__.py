"""SQLAlchemy 2 typed models, one module per aggregate. Importing this package registers all
tables on ``Base.metadata`` (what Alembic and the schema test compare against)."""

from store.orm.base import Base
from store.orm.experiments import ExperimentRow, ExperimentTagRow
from store.orm.system import RequestIdRow, ServiceSettingRow

__all__ = ["Base", "ExperimentRow", "ExperimentTagRow", "RequestIdRow", "ServiceSettingRow"]
