"""Store stage: the single-instance lock of `digestbot run`, the planning lock every run
takes while it decides and queues emails, and the lock of arXiv lookups; all freed by the OS
or the database when their holder dies."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Protocol

from filelock import FileLock, Timeout
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import SQLAlchemyError

from digestbot.errors import ConfigError, DigestbotError

# PostgreSQL advisory lock key of `digestbot run` ("digr"); engine.WRITE_LOCK is another key.
DAEMON_LOCK = 0x64696772
PLANNING_LOCK = 0x64697061  # "dipa"
LOOKUP_LOCK = 0x6469616C  # "dial"
PLANNING_WAIT = 900.0  # seconds a run waits for another to finish deciding its batch
# A host that dies without closing its connection leaves the server holding the lock until
# TCP keepalives notice: about a minute with these, instead of the kernel's two hours.
KEEPALIVES = {"tcp_keepalives_idle": 30, "tcp_keepalives_interval": 10, "tcp_keepalives_count": 3}


class LockTaken(Exception):
    """Another process holds this database's daemon lock."""


class DaemonLock(Protocol):
    """A database's daemon lock."""

    def take(self) -> bool:
        """Try to take it once, without waiting; False if another process holds it."""

    def held(self) -> bool:
        """Whether this process still holds it."""

    def release(self) -> None:
        """Give it up."""


@contextmanager
def daemon_lock(engine: Engine) -> Iterator[DaemonLock]:
    """Hold the database's daemon lock for the block; LockTaken at once if another has it."""
    lock = _take(engine)
    try:
        yield lock
    finally:
        lock.release()


def try_daemon_lock(engine: Engine) -> DaemonLock | None:
    """The database's daemon lock, taken at once; None if another process holds it. The
    caller releases it."""
    lock = _lock_for(engine)
    return lock if lock.take() else None


def daemon_running(engine: Engine) -> bool | None:
    """Whether a `digestbot run` holds the database's daemon lock, found by taking the lock
    without waiting and giving it back at once; None for an in-memory database, which no
    other process can open. Unlike the lease row, this is false as soon as the holder dies."""
    lock = _lock_for(engine)
    if isinstance(lock, _NoLock):
        return None
    if not lock.take():
        return True
    lock.release()
    return False


def _take(engine: Engine) -> DaemonLock:
    lock = _lock_for(engine)
    if not lock.take():
        raise LockTaken
    return lock


def _lock_for(engine: Engine) -> DaemonLock:
    if engine.dialect.name == "postgresql":
        return _AdvisoryLock(engine)
    if engine.dialect.name != "sqlite":
        raise ConfigError(
            f"`digestbot run` cannot lock a {engine.dialect.name} database",
            "use SQLite or PostgreSQL",
        )
    path = lock_path(engine)
    return _NoLock() if path is None else _FileLock(path)


def lock_path(engine: Engine) -> Path | None:
    """The lock file beside a SQLite database file; None for an in-memory database, which
    no other process can open."""
    database, query = engine.url.database, engine.url.query
    if not database or database == ":memory:" or query.get("mode") == "memory":
        return None
    if query.get("uri") == "true":
        database = database.removeprefix("file:")
    return Path(f"{database}.lock")


class _NoLock:
    def take(self) -> bool:
        return True

    def held(self) -> bool:
        return True

    def release(self) -> None:
        pass


class _FileLock:
    """An exclusive flock on `<database>.lock`, held through an open file the kernel closes
    when the process dies, however it dies."""

    def __init__(self, path: Path) -> None:
        self.path = path
        # No fallback to a "soft" lock (the file's existence): that one outlives a kill -9.
        self.lock = FileLock(path, timeout=0, thread_local=False, fallback_to_soft=False)

    def take(self) -> bool:
        try:
            self.lock.acquire()
        except Timeout:
            return False
        except OSError as exc:
            raise ConfigError(
                f"cannot lock {self.path}: {exc.strerror or exc}",
                "keep the database on a local file system that supports flock",
            ) from None
        return True

    def held(self) -> bool:
        return self.lock.is_locked

    def release(self) -> None:
        self.lock.release()


class _AdvisoryLock:
    """A session-level advisory lock on a connection of its own, open as long as it is held:
    the server frees it when that session ends, a crash included."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.connection: Connection | None = None

    def take(self) -> bool:
        """Open the lock's connection and try the lock once; False if another session has it."""
        # Autocommit, so the session never sits idle in a transaction for the daemon's life.
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        connection.detach()  # closing it ends the session rather than pooling it, lock and all
        try:
            for name, seconds in KEEPALIVES.items():
                connection.exec_driver_sql(f"SET {name} = {seconds}")
            query = text("SELECT pg_try_advisory_lock(:key)")
            got = bool(connection.execute(query, {"key": DAEMON_LOCK}).scalar())
        except BaseException:
            connection.close()
            raise
        if not got:
            connection.close()
            return False
        self.connection = connection
        return True

    def held(self) -> bool:
        """True while the lock's session lives. If it ended (a server restart, a dropped
        connection), the lock is taken again if it is free; a server still down raises."""
        if self.connection is not None:
            try:
                self.connection.exec_driver_sql("SELECT 1")
                return True
            except SQLAlchemyError:
                self._close()
        return self.take()

    def release(self) -> None:
        if self.connection is None:
            return
        with suppress(SQLAlchemyError):  # a session already gone holds nothing
            self.connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": DAEMON_LOCK})
        self._close()

    def _close(self) -> None:
        if self.connection is not None:
            with suppress(SQLAlchemyError):
                self.connection.close()
            self.connection = None


class PlanningLock:
    """Held by a run from reading the state it plans on until its last email is queued, so
    two runs never plan against each other (one waits, then plans on what the other queued)
    and a run's own sending never looks like another run's work. Taken from any thread,
    released from any thread."""

    def __init__(self, engine: Engine, wait: float = PLANNING_WAIT) -> None:
        self.engine, self.wait = engine, wait
        self._file: FileLock | None = None
        self._connection: Connection | None = None

    def acquire(self) -> None:
        """Wait for the lock; DigestbotError when another run holds it for `wait` seconds."""
        if self.engine.dialect.name == "postgresql":
            self._advisory()
            return
        path = lock_path(self.engine)
        if path is None:
            return  # an in-memory database: no other process can plan on it
        lock = FileLock(f"{path}.plan", thread_local=False, fallback_to_soft=False)
        try:
            lock.acquire(timeout=self.wait)
        except Timeout:
            raise _busy(self.wait) from None
        self._file = lock

    def _advisory(self) -> None:
        connection = self.engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        try:
            connection.exec_driver_sql(f"SET lock_timeout = {int(self.wait * 1000)}")
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": PLANNING_LOCK})
            connection.exec_driver_sql("RESET lock_timeout")
        except SQLAlchemyError as exc:
            connection.invalidate()  # the session ends, and nothing it may hold outlives it
            connection.close()
            if "lock timeout" in str(exc):
                raise _busy(self.wait) from None
            raise
        self._connection = connection

    def release(self) -> None:
        if self._file is not None:
            self._file.release()
            self._file = None
        if self._connection is not None:
            try:
                query = text("SELECT pg_advisory_unlock(:key)")
                self._connection.execute(query, {"key": PLANNING_LOCK})
            except SQLAlchemyError:
                self._connection.invalidate()  # never back to the pool with the lock held
            self._connection.close()
            self._connection = None


@contextmanager
def lookup_lock(engine: Engine) -> Iterator[bool]:
    """Whether this process may look papers up on arXiv now (False while another process
    on this database does): arXiv asks for one request at a time."""
    if engine.dialect.name == "postgresql":
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            key = {"key": LOOKUP_LOCK}
            taken = bool(
                connection.execute(text("SELECT pg_try_advisory_lock(:key)"), key).scalar()
            )
            try:
                yield taken
            finally:
                if taken:
                    connection.execute(text("SELECT pg_advisory_unlock(:key)"), key)
        return
    path = lock_path(engine)
    if path is None:
        yield True  # an in-memory database: no other process can open it
        return
    lock = FileLock(f"{path}.lookups", timeout=0, thread_local=False, fallback_to_soft=False)
    try:
        lock.acquire()
    except Timeout:
        yield False
        return
    try:
        yield True
    finally:
        lock.release()


def _busy(wait: float) -> DigestbotError:
    return DigestbotError(
        f"another digestbot run has been deciding emails for over {wait / 60:.0f} minutes",
        "let it finish (`digestbot status` shows the scheduler), then run this again",
    )
