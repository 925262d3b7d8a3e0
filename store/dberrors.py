"""Classify database errors by SQLSTATE / SQLite error name and constraint name.

Never by message text. A constraint that a repository expects to be violated (a unique name)
is registered in ``UNIQUE_VIOLATIONS`` with the domain error it means; anything else that is
a database error but not the caller's fault stays a bug (INTERNAL).

SQLite reports no constraint names (only a message), so on SQLite no unique violation is ever
expected: write transactions start with ``BEGIN IMMEDIATE`` and hold the database lock, so a
repository's "is this name taken?" check cannot race there. On PostgreSQL the race is real and
``diag.constraint_name`` names the constraint.
"""

from __future__ import annotations

from collections.abc import Callable

import sqlalchemy.exc as sa_exc

from store.errors import Aborted, AlreadyExists, InvalidArgument, StoreError, Unavailable

# constraint name -> factory of the error it means
UNIQUE_VIOLATIONS: dict[str, Callable[[], StoreError]] = {
    "uq_experiments_name": lambda: AlreadyExists(
        "EXPERIMENT_ALREADY_EXISTS", "an experiment with this name already exists (deleted ones included)"
    ),
    "ix_labeling_sessions_experiment_id_name": lambda: AlreadyExists(
        "LABELING_SESSION_ALREADY_EXISTS", "a labeling session with this name already exists in the experiment"
    ),
}

_PG_RETRYABLE = {"40001", "40P01"}  # serialization_failure, deadlock_detected
_PG_UNAVAILABLE_CLASSES = ("08", "53", "57")  # connection, insufficient resources, operator intervention
_PG_BAD_REGEX = "2201B"


def constraint_name(err: sa_exc.DBAPIError) -> str | None:
    """The name of the violated constraint, on either backend."""
    orig = err.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:
        return getattr(diag, "constraint_name", None)
    return None


def translate(err: sa_exc.DBAPIError) -> StoreError | None:
    """The domain error ``err`` stands for, or None when it is a bug."""
    orig = err.orig
    sqlstate = getattr(orig, "sqlstate", None)
    if sqlstate is not None:
        if sqlstate == "23505":
            factory = UNIQUE_VIOLATIONS.get(constraint_name(err) or "")
            return factory() if factory else None
        if sqlstate in _PG_RETRYABLE:
            return Aborted("CONCURRENCY_CONFLICT", "the transaction conflicted with a concurrent one; retry")
        if sqlstate == _PG_BAD_REGEX:
            return InvalidArgument.field("filter", "invalid regular expression", reason="INVALID_FILTER")
        if sqlstate.startswith(_PG_UNAVAILABLE_CLASSES):
            return Unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry")
        return None
    errname = getattr(orig, "sqlite_errorname", None)
    if errname is not None:
        if errname.startswith(("SQLITE_BUSY", "SQLITE_LOCKED")):
            return Unavailable("DATABASE_BUSY", "the database is busy; retry")
        if errname.startswith(("SQLITE_CANTOPEN", "SQLITE_IOERR", "SQLITE_FULL")):
            return Unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry")
        return None
    if isinstance(err, sa_exc.OperationalError) or err.connection_invalidated:
        # psycopg raises OperationalError without SQLSTATE when the connection itself fails.
        return Unavailable("DATABASE_UNAVAILABLE", "the database is unavailable; retry")
    return None


def translate_any(exc: BaseException) -> StoreError | None:
    """Like ``translate`` for any exception: pool timeouts are UNAVAILABLE too."""
    if isinstance(exc, sa_exc.TimeoutError):
        return Unavailable("DATABASE_POOL_EXHAUSTED", "no database connection was free in time; retry")
    if isinstance(exc, sa_exc.DBAPIError):
        return translate(exc)
    return None
