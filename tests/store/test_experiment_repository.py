"""The experiment repository and the unit of work, on both databases, without gRPC."""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

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


def _assess(uow: UnitOfWork, *trace_ids: str) -> None:
    source = AssessmentSource("HUMAN", "rater")
    items = [NewAssessment(t, "quality", "feedback", source, 0.5) for t in trace_ids]
    uow.assessments.create(items, 1, ["assessment"] * len(items))


@pytest.mark.postgresql_only  # SQLite plans every statement afresh
def test_write_statements_keep_one_plan_per_connection(database: Database) -> None:
    """A write connection plans each prepared statement once, not for every call's values.
    Under ``plan_cache_mode=auto`` the trace lock of CreateAssessment (``trace_id = ANY(ids)``)
    was planned afresh on every call, since its generic estimate (10 rows) never beat the
    custom plans' (1 row): ~0.25 ms of PostgreSQL CPU per CreateAssessment. That lock is now
    BatchCreateAssessments' (a single assessment is locked and written by one statement)."""
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
    for trace_id in traces:  # on this thread's write connection: prepared by the first (store/query/pg_exec.py)
        database.write(lambda uow, trace_id=trace_id: _assess(uow, trace_id))  # one statement (_PG_CREATE_ONE)
        database.write(lambda uow, trace_id=trace_id: _assess(uow, trace_id, traces[0]))  # a batch: lock, insert
    for statement in ("%FOR KEY SHARE OF traces FOR SHARE OF experiments%", "%locked_trace%"):
        plans = database.write(
            lambda uow, statement=statement: uow.conn.exec_driver_sql(
                "SELECT generic_plans, custom_plans FROM pg_prepared_statements WHERE statement LIKE %(s)s",
                {"s": statement},
            ).one()
        )
        assert plans.custom_plans == 0 and plans.generic_plans == len(traces), (statement, plans)
    assert count_rows(database, "assessments") == 3 * len(traces)


def _blob(value: bytes) -> Any:
    return sa.select(sa.literal(value).label("b"))


def test_statements_of_other_columns_types_and_formats_read_back(database: Database) -> None:
    """Statements on one connection, with text and binary results and other column types in
    between (one Transformer per connection on PostgreSQL, store/query/pg_exec.py), each read
    back right."""
    made = database.write(lambda uow: uow.experiments.create("formats", "", {"k": "v"}, 7))

    def reads(uow: UnitOfWork) -> tuple[Any, ...]:
        return (
            uow.fetch_column(_blob(b"\x00\xff"), {}),
            uow.experiments.get(made.experiment_id),
            uow.fetch_column(sa.select(sa.literal(2.5).label("x")), {}),
            uow.fetch(_blob(b"\x01"), {})[0].b,
            uow.fetch_column(sa.select(sa.literal("ü").label("t")), {}),
        )

    blob, got, number, text_blob, text = database.read(reads)
    assert (blob, got, number, text) == ([b"\x00\xff"], made, [2.5], ["ü"])
    assert bytes(text_blob) == b"\x01"


def _prepared(uow: UnitOfWork, like: str) -> list[Any]:
    """This connection's own prepared statements (store/query/pg_exec.py) whose SQL is ``like``."""
    return list(
        uow.conn.exec_driver_sql(
            "SELECT name, statement FROM pg_prepared_statements WHERE name LIKE '\\_mg%%' AND statement LIKE %(s)s",
            {"s": like},
        ).all()
    )


@pytest.mark.postgresql_only
def test_statements_are_prepared_once_per_connection(database: Database) -> None:
    """A compiled statement is prepared on the connection by its first run and reused after."""
    made = database.write(lambda uow: uow.experiments.create("prepared", "", {"k": "v"}, 7))
    for _ in range(5):
        assert database.read(lambda uow: uow.experiments.get(made.experiment_id)) == made
    statements = database.read(lambda uow: _prepared(uow, "%FROM experiments%"))
    assert statements, "GetExperiment's statement is prepared"
    assert len({s.statement for s in statements}) == len(statements), statements


@pytest.mark.postgresql_only
def test_prepared_statements_follow_the_parameter_types(database: Database) -> None:
    """An integer that needs int8 and one that fits int2 are different prepared statements (as
    psycopg keys its own): each reads back its own value; NULL, text, bytes and arrays too."""
    stmt = sa.select(
        sa.bindparam("n", type_=sa.BigInteger).label("n"),
        sa.bindparam("t", type_=sa.Text).label("t"),
        sa.literal_column("'50%'").label("pct"),
    )
    cases = [(1, "a"), (2**40, "b"), (None, None), (-(2**62), "ünï")]
    got = [database.read(lambda uow, n=n, t=t: uow.fetch(stmt, {"n": n, "t": t})[0]) for n, t in cases]
    assert [(r.n, r.t, r.pct) for r in got] == [(n, t, "50%") for n, t in cases]
    ids = sa.select(sa.func.array_length(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Text)), 1).label("k"))
    assert database.read(lambda uow: uow.fetch(ids, {"ids": ["x", "y", "z"]})[0].k) == 3


@pytest.mark.postgresql_only
@pytest.mark.parametrize(
    ("values", "element"),
    [
        (["a", None, "ünï", 'q"u,o{t}e\\', " ", ""], sa.Text),
        ([], sa.Text),
        ([None], sa.Text),
        ([1, 2**40, -(2**62), None], sa.BigInteger),
        ([1, 2], sa.BigInteger),
        ([1.5, -0.0, 2.0], sa.Float),
        ([True, None, False], sa.Boolean),
    ],
)
def test_list_parameters_arrive_as_the_same_arrays(database: Database, values: list[Any], element: Any) -> None:
    """A list parameter travels in binary (store/query/pg_exec.py ``_binary_lists``): the
    array PostgreSQL receives is the one the list holds, element for element, quotes, braces,
    NULLs and empty strings included, and an ``= ANY`` over it matches what it should."""
    param = sa.cast(sa.bindparam("vs"), postgresql.ARRAY(element))
    stmt = sa.select(
        param.label("got"),
        sa.func.cardinality(param).label("n"),
        sa.bindparam("first", type_=element).op("=")(sa.any_(param)).label("first_in"),
    )
    first = values[0] if values else None
    row = database.read(lambda uow: uow.fetch(stmt, {"vs": values, "first": first})[0])
    assert (row.got, row.n) == (values, len(values))
    assert row.first_in is ((None if first is None else True) if values else False)  # nothing is in {}


@pytest.mark.postgresql_only
def test_a_write_transaction_begins_before_its_first_statement(database: Database) -> None:
    """The first statement of a write opens the transaction psycopg would (READ COMMITTED), so
    a failure after it undoes it; a read runs in autocommit."""

    def first(uow: UnitOfWork) -> Any:
        return uow.fetch(
            sa.select(sa.func.current_setting("transaction_isolation").label("level"),
                      sa.func.pg_current_xact_id_if_assigned().label("xid")),
            {},
        )[0]  # fmt: skip

    def write_then_fail(uow: UnitOfWork) -> None:
        assert first(uow).level == "read committed"
        uow.experiments.create("undone", "", {}, 1)
        assert uow.conn.connection.dbapi_connection.info.transaction_status.name == "INTRANS"
        raise NotFound("X", "fail after writing")

    with pytest.raises(NotFound):
        database.write(write_then_fail)
    assert count_rows(database, "experiments", "name = 'undone'") == 0
    assert database.read(lambda uow: uow.conn.connection.dbapi_connection.autocommit)


@pytest.mark.postgresql_only
def test_a_failed_statement_leaves_the_connection_usable(database: Database) -> None:
    """After an error (here a duplicate name) the connection's next transaction runs, with the
    statements it prepared before."""
    database.write(lambda uow: uow.experiments.create("taken", "", {}, 1))
    before = database.write(lambda uow: _prepared(uow, "%experiments%"))

    def duplicate(uow: UnitOfWork) -> None:
        uow.experiments.create("taken", "", {}, 2)

    with pytest.raises(AlreadyExists):
        database.write(duplicate)
    made = database.write(lambda uow: uow.experiments.create("free", "", {}, 3))
    assert database.read(lambda uow: uow.experiments.get(made.experiment_id)).name == "free"
    after = database.write(lambda uow: _prepared(uow, "%experiments%"))
    assert {s.name for s in before} <= {s.name for s in after}
    assert count_rows(database, "experiments", "name IN ('taken', 'free')") == 2


@pytest.mark.postgresql_only
def test_a_connection_keeps_at_most_prepared_max_statements(database: Database, monkeypatch: Any) -> None:
    """Past ``PREPARED_MAX`` the oldest of a connection's statements is deallocated."""
    from store.query import pg_exec

    monkeypatch.setattr(pg_exec, "PREPARED_MAX", 3)
    statements = [sa.select(sa.literal_column(str(i)).label("n")) for i in range(6)]
    for _ in range(2):
        got = database.read(lambda uow: [uow.fetch(s, {})[0].n for s in statements])
        assert got == list(range(6))
    kept = database.read(lambda uow: _prepared(uow, "SELECT _ AS n"))
    assert 0 < len(kept) <= 3, kept
