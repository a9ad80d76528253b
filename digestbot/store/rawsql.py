"""Store stage: the few statements that run once per email or per chunk, as the database's own SQL.

Run through `exec_driver_sql`, such a statement costs half what the same statement built as
a Core expression does (a claim and a close on the bench data: 0.22 -> 0.12 ms an email),
which spends the rest building its parameters and results. They are written once, with
`:name` parameters, and given to each driver in its own style.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Connection, CursorResult, Dialect

from digestbot.store.tables import UtcDateTime

_NAMED = re.compile(r"(?<![:\w]):(\w+)")


def run(
    connection: Connection, sql: str, params: Mapping[str, Any] | Sequence[Mapping[str, Any]]
) -> CursorResult[Any]:
    """Run `sql` with `params` (one mapping, or several for an executemany); datetimes are
    stored as UtcDateTime columns store them."""
    dialect = connection.dialect
    native = _native(dialect.name, sql)
    if isinstance(params, Mapping):
        return connection.exec_driver_sql(native, _stored(dialect, params))
    return connection.exec_driver_sql(native, [_stored(dialect, p) for p in params])


# One entry: a statement in one driver's style (~0.3 KiB). The statements are module
# constants (claims, outbox), about ten per dialect, so 64 (~20 KiB) is never reached.
@lru_cache(maxsize=64)
def _native(dialect: str, sql: str) -> str:
    """`sql` in the driver's parameter style: sqlite3 takes `:name`, psycopg `%(name)s`."""
    if dialect == "sqlite":
        return sql
    if dialect == "postgresql":
        return _NAMED.sub(r"%(\1)s", sql.replace("%", "%%"))
    raise ValueError(f"no SQL for the {dialect} database")


def _stored(dialect: Dialect, params: Mapping[str, Any]) -> dict[str, Any]:
    to_db = _time_format(dialect)
    return {k: to_db(v) if isinstance(v, datetime) else v for k, v in params.items()}


# One entry: an engine's bind function and the dialect it keeps alive (~5 KiB); a process
# has one engine or a few, so 8 is ~40 KiB.
@lru_cache(maxsize=8)
def _time_format(dialect: Dialect) -> Callable[[Any], Any]:
    """How UtcDateTime binds a datetime on `dialect` (SQLite: a string; PostgreSQL: naive
    UTC), found once per dialect."""
    # The dialect's own implementation: the generic one leaves SQLite a datetime, which
    # sqlite3's deprecated adapter would write in another format than SQLAlchemy's.
    found = UtcDateTime().dialect_impl(dialect).bind_processor(dialect)
    if found is None:  # a TypeDecorator with process_bind_param always has one
        raise RuntimeError(f"UtcDateTime binds nothing on {dialect.name}")
    return found
