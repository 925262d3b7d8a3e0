"""The experiment repository and the unit of work, on both databases, without gRPC."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa

from store.domain import DELETED, AssessmentSource, SearchQuery
from store.errors import AlreadyExists, FailedPrecondition, NotFound, StoreError, Unavailable
from store.repositories.assessments import NewAssessment
from store.uow import Database, UnitOfWork
from tests.helpers import count_rows


def _race(n: int, work: Callable[[int], Any]) -> list[Any]:
    """Run ``work(i)`` for i in range(n) in threads released together; results or exceptions."""
    barrier = threading.Barrier(n)

    def run(i: int) -> Any:
        barrier.wait()
        try:
            return work(i)
        except StoreError as err:
            return err

    with ThreadPoolExecutor(n) as pool:
        return list(pool.map(run, range(n)))


def test_create_then_read_back(database: Database) -> None:
    made = database.write(lambda uow: uow.experiments.create("a", "", {"k": "v"}, 1000))
    got = database.read(lambda uow: uow.experiments.get(made.experiment_id))
    assert got == made
    assert got.artifact_location == f"mlflow-artifacts:/{made.experiment_id}"


def test_a_failed_write_leaves_nothing_behind(database: Database) -> None:
    def create_then_fail(uow: UnitOfWork) -> None:
        uow.experiments.create("doomed", "", {"k": "v"}, 1)
        raise NotFound("X", "fail after writing")

    with pytest.raises(NotFound):
        database.write(create_then_fail)
    assert count_rows(database, "experiments", "name = 'doomed'") == 0
    assert count_rows(database, "experiment_tags") == 0


def test_a_read_cannot_write(database: Database) -> None:
    """Reads run on a read-only connection: a write there is a bug, refused by the database."""

    def sneaky(uow: UnitOfWork) -> None:
        uow.conn.execute(sa.text("UPDATE experiments SET name = 'renamed' WHERE experiment_id = 0"))

    with pytest.raises(sa.exc.DBAPIError):
        database.read(sneaky)
    assert database.read(lambda uow: uow.experiments.get("0")).name == "Default"


def test_concurrent_creates_of_one_name_make_one_experiment(database: Database) -> None:
    results = _race(12, lambda i: database.write(lambda uow: uow.experiments.create("same", "", {}, i)))
    created = [r for r in results if not isinstance(r, StoreError)]
    refused = [r for r in results if isinstance(r, StoreError)]
    assert len(created) == 1
    assert all(isinstance(r, AlreadyExists) and r.reason == "EXPERIMENT_ALREADY_EXISTS" for r in refused)
    assert count_rows(database, "experiments", "name = 'same'") == 1


def test_concurrent_renames_to_one_name_leave_one_winner(database: Database) -> None:
    ids = [database.write(lambda uow, i=i: uow.experiments.create(f"e{i}", "", {}, i)).experiment_id for i in range(8)]
    results = _race(8, lambda i: database.write(lambda uow: uow.experiments.rename(ids[i], "target", 99)))
    winners = [r for r in results if not isinstance(r, StoreError)]
    assert len(winners) == 1
    assert all(isinstance(r, AlreadyExists) for r in results if isinstance(r, StoreError))
    assert count_rows(database, "experiments", "name = 'target'") == 1


def test_tag_writes_racing_a_delete_never_land_in_a_deleted_experiment(database: Database) -> None:
    exp = database.write(lambda uow: uow.experiments.create("busy", "", {}, 1))

    def work(i: int) -> Any:
        if i == 0:
            return database.write(lambda uow: uow.experiments.set_lifecycle_stage(exp.experiment_id, DELETED, 5))
        return database.write(lambda uow: uow.experiments.set_tag(exp.experiment_id, f"k{i}", "v", 5))

    results = _race(10, work)
    final = database.read(lambda uow: uow.experiments.get(exp.experiment_id))
    assert final.lifecycle_stage == DELETED
    failed = [r for r in results[1:] if isinstance(r, StoreError)]
    assert all(isinstance(r, FailedPrecondition) for r in failed)
    # every tag write either landed before the delete or was refused: none is lost silently
    assert len(final.tags) + len(failed) == 9


def test_search_pages_in_the_default_order(database: Database) -> None:
    for i in range(5):
        database.write(lambda uow, i=i: uow.experiments.create(f"s{i}", "", {"i": str(i)}, 100 + i))
    seen: list[str] = []
    token = ""
    while True:
        page = database.read(
            lambda uow, t=token: uow.experiments.search(SearchQuery("tags.i IS NOT NULL", (), 2, t), "active")
        )
        seen += [e.name for e in page.items]
        token = page.next_page_token
        if not token:
            break
    assert seen == ["s4", "s3", "s2", "s1", "s0"]


@pytest.mark.postgresql_only
def test_a_dropped_connection_is_unavailable_once_then_replaced(database: Database, db_url: str) -> None:
    """The database dropping our connections (restart, failover) costs one retryable call."""
    assert database.read(lambda uow: uow.experiments.get("0")).name == "Default"
    database.write(lambda uow: uow.experiments.create("before", "", {}, 1))
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        killed = conn.execute(
            sa.text(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        ).scalar_one()
    admin.dispose()
    assert killed >= 2  # the read and the write connection this thread keeps
    for op in (
        lambda: database.read(lambda uow: uow.experiments.get("0")),
        lambda: database.write(lambda uow: uow.experiments.create("after", "", {}, 2)),
    ):
        with pytest.raises(Unavailable) as info:
            op()
        assert info.value.reason == "DATABASE_UNAVAILABLE"
    assert database.read(lambda uow: uow.experiments.get("0")).name == "Default"
    assert database.write(lambda uow: uow.experiments.create("after", "", {}, 2)).name == "after"


@pytest.mark.postgresql_only
def test_connections_idle_across_a_database_restart_are_replaced_silently(
    database: Database, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """After an idle period, pooled and held connections are pinged first: no call fails."""
    database.read(lambda uow: uow.experiments.get("0"))
    database.write(lambda uow: uow.experiments.create("before", "", {}, 1))
    admin = sa.create_engine(db_url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with admin.connect() as conn:
        conn.execute(
            sa.text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    admin.dispose()
    monkeypatch.setattr("store.engine.IDLE_PING_S", 0.0)
    monkeypatch.setattr("store.uow.IDLE_PING_S", 0.0)
    assert database.read(lambda uow: uow.experiments.get("0")).name == "Default"
    assert database.write(lambda uow: uow.experiments.create("after", "", {}, 2)).name == "after"


def _session_id(uow: UnitOfWork) -> Any:
    """Which database connection the unit of work is on (the backend pid, or SQLite's
    connection object)."""
    if uow.dialect == "postgresql":
        return uow.conn.execute(sa.text("SELECT pg_backend_pid()")).scalar_one()
    return id(uow.conn.connection.dbapi_connection)


def test_a_thread_keeps_its_write_connection_between_writes(database: Database) -> None:
    pool = database.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    first = database.write(_session_id)
    assert pool.checkedout() == 1  # not given back to the pool after the write
    database.write(lambda uow: uow.experiments.create("kept", "", {}, 1))
    assert database.write(_session_id) == first
    assert pool.checkedout() == 1
    assert count_rows(database, "experiments", "name = 'kept'") == 1


@pytest.mark.postgresql_only  # SQLite has one writer at a time: a write inside a write waits for itself
def test_a_write_inside_a_write_runs_on_another_connection(database: Database) -> None:
    outer, inner = database.write(lambda uow: (_session_id(uow), database.write(_session_id)))
    assert outer != inner
    assert database.write(_session_id) == outer


def test_a_failed_write_leaves_the_kept_connection_usable(database: Database) -> None:
    def fail(uow: UnitOfWork) -> None:
        uow.experiments.create("doomed", "", {}, 1)
        raise NotFound("X", "fail after writing")

    for _ in range(3):
        with pytest.raises(NotFound):
            database.write(fail)
    assert database.write(lambda uow: uow.experiments.create("fine", "", {}, 2)).name == "fine"
    assert count_rows(database, "experiments", "name IN ('doomed', 'fine')") == 1


def test_threads_beyond_the_pool_size_borrow_and_ended_threads_give_theirs_back(database: Database) -> None:
    """The fixture's pool has 8 connections: 8 threads keep one each, the others borrow one
    per write; the connections of threads that have ended go back when a thread needs one."""

    def create(name: str) -> Callable[[UnitOfWork], Any]:
        return lambda uow: uow.experiments.create(name, "", {}, 1)

    def three_writes(i: int) -> None:
        for n in range(3):
            database.write(create(f"t{i}-{n}"))

    results = _race(12, three_writes)
    assert all(not isinstance(r, StoreError) for r in results)
    assert count_rows(database, "experiments", "name LIKE 't%-%'") == 36
    pool = database.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    assert pool.checkedout() == 8  # kept by the 12 threads, which have ended
    database.write(lambda uow: uow.experiments.create("later", "", {}, 1))  # this thread's first
    assert pool.checkedout() == 1


def test_a_released_thread_leaves_every_kept_connection_to_the_other_threads(database: Database) -> None:
    """A server's main thread writes at start-up (request-id purge, page-token key) and then
    releases its connections: the fixture's 8 connections are then kept by 8 request threads,
    none of which borrows from the pool on each write."""
    database.write(lambda uow: uow.experiments.create("startup", "", {}, 1))
    database.read(lambda uow: uow.experiments.get_by_name("startup"))
    database.release_thread()
    pool = database.engine.pool
    assert isinstance(pool, sa.pool.QueuePool)
    assert pool.checkedout() == 0
    borrowed: list[bool] = []
    kept = threading.Barrier(8)

    def write_twice(i: int) -> None:
        for name in (f"r{i}-0", f"r{i}-1"):
            database.write(lambda uow, name=name: uow.experiments.create(name, "", {}, 1))
        borrowed.append(database._local.__dict__.get("write") is None)
        kept.wait(30)  # every thread alive while the others look

    _race(8, write_twice)
    assert borrowed == [False] * 8
    assert count_rows(database, "experiments", "name LIKE 'r%-%'") == 16
    assert database.write(lambda uow: uow.experiments.create("after", "", {}, 1)).name == "after"


def _generic_plans_on_a_small_table(uow: UnitOfWork) -> tuple[str, str]:
    """The generic plan (what a prepared statement keeps after five runs) of a lookup by an
    array of ids in a new table like ``traces`` holding 300 traces, never analyzed: with the
    connection's settings, and with sequential scans allowed."""
    conn = uow.conn
    conn.exec_driver_sql("CREATE TEMPORARY TABLE new_traces (LIKE traces INCLUDING INDEXES) ON COMMIT DROP")
    conn.exec_driver_sql(
        "INSERT INTO new_traces (trace_id, experiment_id, request_time, state, span_count, request_time_from_caller,"
        " duration_from_caller, state_from_caller, create_time, update_time)"
        " SELECT 'tr-' || md5(i::text), 0, i, 'OK', 0, false, false, false, i, i FROM generate_series(1, 300) AS i"
    )
    conn.exec_driver_sql("SET LOCAL plan_cache_mode = force_generic_plan")
    plans = []
    for setting in ("SELECT 1", "SET LOCAL enable_seqscan = on"):
        conn.exec_driver_sql(setting)
        conn.exec_driver_sql("PREPARE by_ids(text[]) AS SELECT trace_id FROM new_traces WHERE trace_id = ANY($1)")
        plans.append("\n".join(conn.exec_driver_sql("EXPLAIN EXECUTE by_ids('{tr-0}')").scalars()))
        conn.exec_driver_sql("DEALLOCATE by_ids")
    return plans[0], plans[1]


@pytest.mark.postgresql_only  # SQLite plans every statement afresh
def test_write_plans_made_on_a_small_table_still_seek_by_index(database: Database) -> None:
    """A generic plan stays with its connection until the table is analyzed: the write
    connections must not keep a full scan made while a table was small as the table grows."""
    write_plan, scanning_plan = database.write(_generic_plans_on_a_small_table)
    assert "Index" in write_plan and "Seq Scan" not in write_plan, write_plan
    # What the write connections' settings prevent: the default settings scan the table.
    assert "Seq Scan on new_traces" in scanning_plan, scanning_plan


def _assess(uow: UnitOfWork, trace_id: str) -> None:
    source = AssessmentSource("HUMAN", "rater")
    uow.assessments.create([NewAssessment(trace_id, "quality", "feedback", source, 0.5)], 1, ["assessment"])


@pytest.mark.postgresql_only  # SQLite plans every statement afresh
def test_write_statements_keep_one_plan_per_connection(database: Database) -> None:
    """A write connection plans each prepared statement once, not for every call's values.
    Under ``plan_cache_mode=auto`` the trace lock of CreateAssessment (``trace_id = ANY(ids)``)
    was planned afresh on every call, since its generic estimate (10 rows) never beat the
    custom plans' (1 row): ~0.25 ms of PostgreSQL CPU per CreateAssessment."""
    experiment = database.write(lambda uow: uow.experiments.create("plans", "", {}, 1)).experiment_id
    database.write(
        lambda uow: uow.conn.exec_driver_sql(
            "INSERT INTO traces (trace_id, experiment_id, request_time, state, span_count, request_time_from_caller,"
            " duration_from_caller, state_from_caller, create_time, update_time)"
            " SELECT 'tr-' || md5(i::text), %(e)s, i, 'OK', 0, false, false, false, i, i"
            " FROM generate_series(1, 20) AS i",
            {"e": int(experiment)},
        )
    )
    traces = database.read(
        lambda uow: uow.conn.exec_driver_sql("SELECT trace_id FROM traces ORDER BY trace_id").scalars().all()
    )
    for trace_id in traces:  # on this thread's write connection: prepared after the 5th
        database.write(lambda uow, trace_id=trace_id: _assess(uow, trace_id))
    plans = database.write(
        lambda uow: uow.conn.exec_driver_sql(
            "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %(s)s",
            {"s": "%FOR KEY SHARE OF traces FOR SHARE OF experiments%"},
        ).one()
    )
    assert plans.custom_plans == 0 and plans.generic_plans == len(traces) - 5, plans
    assert count_rows(database, "assessments") == len(traces)


def _kept_cursor(uow: UnitOfWork) -> Any:
    return getattr(uow.conn.connection.dbapi_connection, "_mlgenai_cursor", None)


@pytest.mark.postgresql_only  # SQLite gets a cursor per statement (see store/query/raw.py)
def test_statements_reuse_one_cursor_per_connection(database: Database) -> None:
    """The fetch helpers keep one driver cursor on a PostgreSQL connection: statements with
    other columns, other types and binary results in between still read back right."""
    made = database.write(lambda uow: uow.experiments.create("cursor", "", {"k": "v"}, 7))

    def reads(uow: UnitOfWork) -> tuple[Any, Any, Any, Any]:
        first = uow.experiments.get(made.experiment_id)
        cursor = _kept_cursor(uow)
        numbers = uow.fetch(sa.select(sa.literal(2.5).label("x"), sa.literal(b"\x00\x01").label("b")), {})
        blobs = uow.fetch_column(sa.select(sa.literal(b"\x00\xff").label("b")), {})
        again = uow.experiments.get(made.experiment_id)
        assert _kept_cursor(uow) is cursor
        return first, (numbers[0].x, numbers[0].b, blobs), again, cursor

    first, others, again, cursor = database.read(reads)
    assert first == again == made
    assert others == (2.5, b"\x00\x01", [b"\x00\xff"])
    assert cursor is not None and not cursor.closed
    assert database.read(_kept_cursor) is cursor  # the thread's read connection keeps it between calls


@pytest.mark.postgresql_only
def test_a_large_result_is_not_kept_by_the_cursor(database: Database) -> None:
    """A connection does not hold a big result until its next statement: its cursor is closed
    and the next statement opens another one."""
    rows = sa.select(sa.func.generate_series(1, 1001).label("n"))

    def big(uow: UnitOfWork) -> tuple[int, Any, Any]:
        before = (uow.fetch(sa.select(sa.literal(1).label("n")), {}), _kept_cursor(uow))[1]
        got = uow.fetch(rows, {})
        return len(got), before, _kept_cursor(uow)

    count, before, after = database.read(big)
    assert count == 1001 and before is not None
    assert before.closed and after is None
    assert database.read(lambda uow: uow.fetch(sa.select(sa.literal(3).label("n")), {})[0].n) == 3
    assert database.read(_kept_cursor) is not None


@pytest.mark.postgresql_only
def test_a_failed_statement_leaves_the_kept_cursor_usable(database: Database) -> None:
    """After an error on the kept cursor (here a duplicate name) the connection's next
    transaction runs its statements on the same cursor."""
    database.write(lambda uow: uow.experiments.create("taken", "", {}, 1))
    cursors: list[Any] = []

    def duplicate(uow: UnitOfWork) -> None:
        uow.experiments.create("taken", "", {}, 2)

    with pytest.raises(AlreadyExists):
        database.write(duplicate)
    made = database.write(lambda uow: (cursors.append(_kept_cursor(uow)), uow.experiments.create("free", "", {}, 3))[1])
    assert database.read(lambda uow: uow.experiments.get(made.experiment_id)).name == "free"
    assert cursors[0] is not None and not cursors[0].closed
    assert count_rows(database, "experiments", "name = 'taken'") == 1


def test_only_postgresql_connections_keep_a_cursor(database: Database) -> None:
    """SQLite keeps no cursor on its connections (its shared in-memory one serves several
    threads): each statement gets its own."""
    made = database.write(lambda uow: uow.experiments.create("kept", "", {}, 1))
    got, kept = database.read(lambda uow: (uow.experiments.get(made.experiment_id), _kept_cursor(uow)))
    assert got == made
    assert (kept is not None) == (database.engine.dialect.name == "postgresql")
