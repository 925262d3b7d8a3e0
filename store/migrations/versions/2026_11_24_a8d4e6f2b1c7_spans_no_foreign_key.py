"""spans without a foreign key to traces

PostgreSQL checks a foreign key once per inserted row: a lookup of the trace row and a lock on
it, for every span of a LogSpans or OTLP export (hundreds per call). Every span write holds its
trace row's lock until commit (the row it inserted, or the one it locked), so the trace exists
while its spans are written, and DeleteTraces deletes the spans itself under that lock
(``TraceRepository.delete``): the key guarded nothing the lock does not.

Revision ID: a8d4e6f2b1c7
Revises: f1c2d3e4a5b6
Create Date: 2026-11-24 19:00:00.000000
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "a8d4e6f2b1c7"
down_revision: str | None = "f1c2d3e4a5b6"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_FK = "fk_spans_trace_id_traces"


def upgrade() -> None:
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.drop_constraint(_FK, type_="foreignkey")


def downgrade() -> None:
    op.execute("DELETE FROM spans WHERE NOT EXISTS (SELECT 1 FROM traces t WHERE t.trace_id = spans.trace_id)")
    with op.batch_alter_table("spans", schema=None) as batch_op:
        batch_op.create_foreign_key(_FK, "traces", ["trace_id"], ["trace_id"], ondelete="CASCADE")
