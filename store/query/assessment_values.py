"""The numeric view of an assessment value, shared by every aggregation (SPEC §4).

A true number counts as itself, a boolean as 1/0, the strings "yes"/"no" in any ASCII letter
case (not trimmed) as 1/0; any other value (other strings, lists, objects, null, errors) has no
numeric view and is left out of means and percentiles. The pass view is 1/0 for booleans and
yes/no only: a pass rate is the share of passes among those. "yes"/"no" are matched as an IN
list of their spellings rather than through ``lower()``, whose folding of non-ASCII letters
depends on PostgreSQL's locale.
"""

from __future__ import annotations

from itertools import product
from typing import Any

import sqlalchemy as sa

YES, NO = "yes", "no"


def _spellings(word: str) -> list[Any]:
    """Every ASCII upper/lower-case spelling of ``word`` ("yes", "Yes", "YES", …), as SQL
    literals: inline constants keep the statements free of expanding parameters, so they can be
    compiled once (``store/query/raw.py``)."""
    return [sa.literal_column(f"'{''.join(chars)}'") for chars in product(*((c.lower(), c.upper()) for c in word))]


_ONE: sa.ColumnElement[float] = sa.literal(1.0, sa.Double())
_ZERO: sa.ColumnElement[float] = sa.literal(0.0, sa.Double())


def numeric_view(table: Any) -> sa.ColumnElement[Any]:
    """The value as a number, or NULL. ``table``: the assessments table or an alias of it."""
    return sa.case((table.c.value_number.is_not(None), table.c.value_number), *_pass_cases(table))


def pass_view(table: Any) -> sa.ColumnElement[Any]:
    """1/0 for booleans and yes/no, else NULL."""
    return sa.case(*_pass_cases(table))


def _pass_cases(table: Any) -> list[tuple[Any, Any]]:
    return [
        (table.c.value_bool.is_(True), _ONE),
        (table.c.value_bool.is_(False), _ZERO),
        (table.c.value_string.in_(_spellings(YES)), _ONE),
        (table.c.value_string.in_(_spellings(NO)), _ZERO),
    ]
