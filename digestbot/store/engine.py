"""Store stage: the engine (SQLite in WAL mode with a busy timeout, or PostgreSQL through psycopg)
and its write transactions."""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, TextClause, bindparam, event, text
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

from digestbot.errors import ConfigError
from digestbot.store.failures import shown, store_error
from digestbot.store.migrate import Upgraded, current, ensure_current
from digestbot.store.tables import UtcDateTime

BUSY_TIMEOUT_MS = 30_000
WRITE_LOCK = 0x64696765  # PostgreSQL advisory lock key of write_session ("dige")


@contextmanager
def write_session(engine: Engine) -> Iterator[Session]:
    """A session whose transaction takes the write lock at once (BEGIN IMMEDIATE on SQLite),
    so a read-then-write inside it cannot interleave with another writer; commits on exit."""
    with Session(engine) as session, session.begin():
        if engine.dialect.name == "sqlite":
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        elif engine.dialect.name == "postgresql":
            # The same one-writer-at-a-time rule, held until commit (outbox claims do not
            # take it: they lock their row instead).
            session.connection().exec_driver_sql(f"SELECT pg_advisory_xact_lock({WRITE_LOCK})")
        yield session


def make_engine(
    url: str,
    *,
    upgrade: bool = True,
    on_upgrade: Callable[[Upgraded], None] | None = None,
    busy_timeout: float = BUSY_TIMEOUT_MS / 1000,
) -> Engine:
    """The engine for `url`, its schema checked: an older one is upgraded (unless not
    `upgrade`, for `digestbot db`), a newer one refused. SQLite gets WAL and a busy timeout
    of `busy_timeout` seconds. Errors name the URL with its password as ***."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, not psycopg2
    try:
        engine = create_engine(url)
    except ImportError:
        raise ConfigError(
            f"DIGESTBOT_DATABASE_URL {shown(url)!r} needs a database driver that is not installed",
            "for PostgreSQL run `pip install 'digestbot[postgres]'`",
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        reason = str(exc).replace(url, shown(url))
        raise ConfigError(
            f"DIGESTBOT_DATABASE_URL {shown(url)!r} is not usable: {reason}",
            "use a URL such as sqlite:///digestbot.db or postgresql://user@host/dbname",
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", functools.partial(_sqlite_pragmas, busy_timeout))
    try:
        if upgrade:
            ensure_current(engine, on_upgrade=on_upgrade)
        else:
            current(engine)  # opens it: a bad path fails here, not in the command
    except SQLAlchemyError as exc:
        engine.dispose()
        raise store_error(exc, url, busy_timeout=busy_timeout) from None
    except ConfigError:
        engine.dispose()
        raise
    return engine


def _sqlite_pragmas(busy_timeout: float, dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={round(busy_timeout * 1000)}")
    # In WAL mode NORMAL survives any process crash (kill -9 included); only a power loss
    # can drop the last commits, and it saves an fsync per outbox state change.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Debian's SQLite zeroes every freed page (SECURE_DELETE): dropping a day's stored
    # messages at 10,000 subscribers wrote ~550 MB of zeros, 3.7 s; FAST zeroes only what
    # costs no extra I/O, 0.19 s.
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()


TIMES = ("now", "next_attempt_at", "sent_at")  # the time parameters statements of ours take


def sql(statement: str) -> TextClause:
    """`statement` (SQL with `:name` parameters) as a Core text clause whose time parameters
    are bound as UtcDateTime columns store them."""
    times = [bindparam(name, type_=UtcDateTime) for name in TIMES if f":{name}" in statement]
    return text(statement).bindparams(*times)
