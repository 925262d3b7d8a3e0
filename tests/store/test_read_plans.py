"""Plans of hot reads that must not depend on PostgreSQL's statistics: a table that grew since it
was last analyzed (autovacuum behind, or off) must still be read through its index."""

from __future__ import annotations

from typing import Any

import pytest

from store.domain import SearchQuery
from store.query.raw import RawStatement
from store.repositories.assessments import _OF_TRACES, AssessmentRepository
from store.repositories.trace_reads import TraceReader
from store.uow import Database, UnitOfWork

ASSESSMENTS = 5_000
TRACES = 500


def _fill(uow: UnitOfWork) -> None:
    """``TRACES`` traces with ``ASSESSMENTS`` feedback between them, written in plain SQL."""
    uow.conn.exec_driver_sql(
        "INSERT INTO traces (trace_id, experiment_id, request_time, state, span_count, request_time_from_caller,"
        " duration_from_caller, state_from_caller, create_time, update_time)"
        " SELECT 'tr-' || md5(i::text), 0, i, 'OK', 0, false, false, false, i, i"
        " FROM generate_series(1, %(n)s) AS i",
        {"n": TRACES},
    )
    uow.conn.exec_driver_sql(
        "INSERT INTO assessments (assessment_id, trace_id, name, kind, source_type, value, metadata, valid,"
        " create_time, update_time)"
        " SELECT 'a-' || md5(i::text), 'tr-' || md5((i %% %(t)s + 1)::text), 'quality', 'feedback', 'HUMAN',"
        " '0.5', '{}', true, i, i FROM generate_series(1, %(n)s) AS i",
        {"n": ASSESSMENTS, "t": TRACES},
    )


def _plan(uow: UnitOfWork, sql: str, params: dict[str, Any]) -> str:
    return "\n".join(uow.conn.exec_driver_sql("EXPLAIN " + sql, params).scalars())


@pytest.mark.postgresql_only  # SQLite has no statistics-driven choice between these plans
def test_assessments_of_a_page_of_traces_are_sought_per_trace_without_statistics(database: Database) -> None:
    database.write(_fill)
    ids = [row[0] for row in database.read(lambda uow: uow.conn.exec_driver_sql(
        "SELECT trace_id FROM traces ORDER BY trace_id LIMIT 100").all())]  # fmt: skip

    def plan(uow: UnitOfWork) -> str:
        compiled = _OF_TRACES.postgresql.compile(dialect=uow.conn.dialect)
        return _plan(uow, str(compiled), {**compiled.params, "b_ids": ids})

    # (The plain ``trace_id = ANY(ids)`` form is a sequential scan here, in a new database.)
    ours = database.read(plan)
    assert "ix_assessments_trace_id_create_time" in ours and "Seq Scan on assessments" not in ours, ours
    # And it returns every assessment of those traces, oldest first within each trace.
    got = database.read(lambda uow: AssessmentRepository(uow).of_traces(ids))
    assert sum(len(v) for v in got.values()) == ASSESSMENTS * len(ids) // TRACES
    for found in got.values():
        times = [a.create_time_ms for a in found]
        assert times == sorted(times)
    assert set(got) == set(ids)
    expected = database.read(
        lambda uow: uow.conn.exec_driver_sql(
            "SELECT count(*) FROM assessments WHERE trace_id = ANY(%(ids)s)", {"ids": ids}
        ).scalar_one()
    )
    assert expected == ASSESSMENTS * len(ids) // TRACES


@pytest.mark.postgresql_only  # SQLite has no statistics-driven choice between these plans
def test_the_first_page_of_one_experiment_is_read_in_index_order(database: Database) -> None:
    """SearchTraces of one experiment under the default order reads the first traces of its
    (experiment_id, request_time, trace_id) index and stops at the page: a one-element list
    (``= ANY``) made PostgreSQL sort every trace of the experiment, with its tags and metadata."""
    database.write(
        lambda uow: uow.conn.exec_driver_sql(
            "INSERT INTO traces (trace_id, experiment_id, request_time, state, span_count, request_time_from_caller,"
            " duration_from_caller, state_from_caller, create_time, update_time)"
            " SELECT 'tr-' || md5(i::text), 0, i, CASE WHEN i %% 3 = 0 THEN 'ERROR' ELSE 'OK' END, 0, false, false,"
            " false, i, i FROM generate_series(1, %(n)s) AS i",
            {"n": 20_000},
        )
    )
    database.write(lambda uow: uow.conn.exec_driver_sql("ANALYZE traces"))
    query = SearchQuery(filter="trace.status = 'OK'", page_size=100)
    statements: list[str] = []

    def search(uow: UnitOfWork) -> Any:
        cursor = uow.conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        real = uow.fetch_raw

        def explained(raw: RawStatement, params: dict[str, Any]) -> list[Any]:
            cursor.execute("EXPLAIN " + raw.sql, raw.parameters(params))
            statements.append("\n".join(r[0] for r in cursor.fetchall()))
            return real(raw, params)

        uow.fetch_raw = explained  # type: ignore[method-assign]
        return TraceReader(uow).search(["0"], query)

    page = database.read(search)
    plan = statements[0]
    assert "Index Scan Backward using ix_traces_experiment_id_request_time_trace_id" in plan, plan
    assert "->  Sort  " not in plan and "Seq Scan on traces" not in plan, plan
    # The page itself: the 100 newest OK traces, newest first.
    expected = [i for i in range(20000, 0, -1) if i % 3][:100]
    assert [t.request_time_ms for t in page.items] == expected
