"""Store stage: the engine (SQLite in WAL mode with a busy timeout, or PostgreSQL through psycopg)
and its write transactions."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, create_engine

from digestbot.errors import ConfigError
from digestbot.store.migrate import Upgraded, current, ensure_current

BUSY_TIMEOUT_MS = 30_000
WRITE_LOCK = 0x64696765  # PostgreSQL advisory lock key of write_session ("dige")
# SQLite's automatic WAL checkpoint (copy the log into the database file, fsync it) runs in
# whichever commit crosses its threshold, and a batch commits a ~56 kB message per email:
# the sending process's event loop stood still in that fsync, ~1.2 s of a 35 s batch
# (bench_delivery). During a batch `checkpoints` runs them in a thread instead; the
# automatic one stays as the fallback, at 40 MB rather than 4.
WAL_AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_EVERY = 0.2  # seconds


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


@contextmanager
def checkpoints(engine: Engine, every: float = CHECKPOINT_EVERY) -> Iterator[None]:
    """While the block runs, a thread checkpoints the SQLite write-ahead log every `every`
    seconds (PASSIVE: it never waits for, nor blocks, a reader or writer), so commits here
    do not wait on the disk for it. Nothing on other databases."""
    if engine.dialect.name != "sqlite":
        yield
        return
    stop = threading.Event()
    worker = threading.Thread(
        target=_checkpoint_until, args=(engine, stop, every), name="wal-checkpoints"
    )
    worker.start()
    try:
        yield
    finally:
        stop.set()
        worker.join()


def _checkpoint_until(engine: Engine, stop: threading.Event, every: float) -> None:
    connection = engine.raw_connection()  # back to the pool on close
    cursor = connection.cursor()
    try:
        while not stop.wait(every):
            # Busy only when another connection is checkpointing: the next round catches up.
            with suppress(sqlite3.OperationalError):
                cursor.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
    finally:
        cursor.close()
        connection.close()


def make_engine(
    url: str, *, upgrade: bool = True, on_upgrade: Callable[[Upgraded], None] | None = None
) -> Engine:
    """The engine for `url`, its schema checked: an older one is upgraded (unless not
    `upgrade`, for `digestbot db`), a newer one refused. SQLite gets WAL and a busy timeout."""
    if url.startswith(("postgresql://", "postgres://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]  # psycopg 3, not psycopg2
    try:
        engine = create_engine(url)
    except ImportError:
        raise ConfigError(
            f"DIGESTBOT_DATABASE_URL {url!r} needs a database driver that is not installed",
            "for PostgreSQL run `pip install 'digestbot[postgres]'`",
        ) from None
    except (SQLAlchemyError, ValueError) as exc:
        raise ConfigError(
            f"DIGESTBOT_DATABASE_URL {url!r} is not usable: {exc}",
            "use a URL such as sqlite:///digestbot.db or postgresql://user@host/dbname",
        ) from None
    if engine.dialect.name == "sqlite":
        event.listen(engine, "connect", _sqlite_pragmas)
    try:
        if upgrade:
            ensure_current(engine, on_upgrade=on_upgrade)
        else:
            current(engine)  # opens it: a bad path fails here, not in the command
    except SQLAlchemyError as exc:
        engine.dispose()
        raise ConfigError(
            f"cannot open the database {url!r}: {exc.__class__.__name__}: {exc.args[0]}",
            "check that its folder exists and is writable",
        ) from None
    except ConfigError:
        engine.dispose()
        raise
    return engine


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    # In WAL mode NORMAL survives any process crash (kill -9 included); only a power loss
    # can drop the last commits, and it saves an fsync per outbox state change.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    cursor.execute("PRAGMA foreign_keys=ON")
    # Debian's SQLite zeroes every freed page (SECURE_DELETE): dropping a day's stored
    # messages at 10,000 subscribers wrote ~550 MB of zeros, 3.7 s; FAST zeroes only what
    # costs no extra I/O, 0.19 s.
    cursor.execute("PRAGMA secure_delete=FAST")
    cursor.close()
