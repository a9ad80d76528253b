"""Storage: SQLModel tables and the engine (SQLite in WAL mode with a busy timeout, or
PostgreSQL through psycopg)."""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    Column,
    DateTime,
    Engine,
    LargeBinary,
    TypeDecorator,
    UniqueConstraint,
    event,
)
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Field, Session, SQLModel, create_engine

from digestbot.errors import ConfigError
from digestbot.upgrade import upgrade

BUSY_TIMEOUT_MS = 30_000
WRITE_LOCK = 0x64696765  # PostgreSQL advisory lock key of write_session ("dige")
# SQLite's automatic WAL checkpoint (copy the log into the database file, fsync it) runs in
# whichever commit crosses its threshold, and a batch commits a ~56 kB message per email:
# the sending process's event loop stood still in that fsync, ~1.2 s of a 35 s batch
# (bench_delivery). During a batch `checkpoints` runs them in a thread instead; the
# automatic one stays as the fallback, at 40 MB rather than 4.
WAL_AUTOCHECKPOINT_PAGES = 10_000
CHECKPOINT_EVERY = 0.2  # seconds


class UtcDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in, aware UTC datetimes out, whatever the database keeps."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("digestbot stores only timezone-aware datetimes")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


class PaperRow(SQLModel, table=True):
    """A paper digestbot has seen; `id` is the arXiv id or a hash of the normalised title."""

    __tablename__ = "papers"
    id: str = Field(primary_key=True)
    title: str
    norm_title: str = Field(index=True)
    abstract: str
    arxiv_id: str | None = Field(default=None, index=True)
    authors: str = "[]"  # JSON list of names
    author_count: int | None = None
    organisation: str | None = None
    published: date | None = None
    upvotes: int | None = None
    comments: int | None = None
    categories: str = "[]"  # JSON list
    links: str = "{}"  # JSON object kind -> URL
    keywords: str = "[]"  # JSON list
    sources: str = "[]"  # JSON list of the sources that listed it
    first_seen: datetime = Field(index=True, sa_type=UtcDateTime)
    # The highest sent_papers.id when this paper was first stored: every row recording it as
    # sent comes later, so planning reads the sent papers after its candidates' lowest mark.
    sent_mark: int = 0


class FeedStateRow(SQLModel, table=True):
    """What a URL's server last said identifies its answer, for conditional requests."""

    __tablename__ = "feed_state"
    url: str = Field(primary_key=True)
    etag: str | None = None
    last_modified: str | None = None
    fetched_at: datetime = Field(sa_type=UtcDateTime)


class SubscriberRow(SQLModel, table=True):
    """A subscriber; removed ones are deactivated, never deleted, so history stays."""

    __tablename__ = "subscribers"
    id: int | None = Field(default=None, primary_key=True)
    email: str = Field(unique=True)
    name: str = ""
    active: bool = True
    max_papers: int = 25
    timezone: str = "UTC"
    send_at: str = "08:00"
    frequency: str = "daily"
    send_empty: bool = False
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)


class RuleRow(SQLModel, table=True):
    """One rule of a subscriber, its body kept as JSON so the rule language can grow."""

    __tablename__ = "rules"
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    position: int
    name: str
    body: str  # JSON of the resolved rule, topics included (see subscribers.rule_to_json)


class DeliveryRow(SQLModel, table=True):
    """One email: decided and stored before it is sent, so nothing is lost between steps."""

    __tablename__ = "deliveries"
    __table_args__ = (UniqueConstraint("subscriber_id", "kind", "period_key"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    kind: str = "digest"
    period_key: str
    message_id: str = Field(unique=True)
    status: str = Field(default="pending", index=True)  # see outbox.STATES
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    claimed_by: str | None = None  # "host:pid" of the process sending it
    claimed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    paper_ids: str = "[]"  # JSON list, recorded as sent when the server accepts
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = None
    delivered_to: str | None = None


class MessageRow(SQLModel, table=True):
    """The rendered message of one delivery, written once when the delivery is enqueued.

    Kept out of `deliveries` because SQLite rewrites a whole row on every UPDATE: with the
    message inline, each state change (claimed, sent) rewrote tens of kilobytes.
    """

    __tablename__ = "delivery_messages"
    delivery_id: int = Field(foreign_key="deliveries.id", primary_key=True)
    raw: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class SentPaperRow(SQLModel, table=True):
    """A paper that reached a subscriber; never sent to them again."""

    __tablename__ = "sent_papers"
    __table_args__ = (UniqueConstraint("subscriber_id", "paper_id"),)
    id: int | None = Field(default=None, primary_key=True)
    # No index of its own: UNIQUE(subscriber_id, paper_id) serves lookups by subscriber, and
    # every email sent adds a row per paper to each index here; an index on paper_id, its
    # entries spread over every paper of the day, made each email's commit 0.09 -> 0.34 ms.
    subscriber_id: int = Field(foreign_key="subscribers.id")
    paper_id: str = Field(foreign_key="papers.id")
    delivery_id: int = Field(foreign_key="deliveries.id")
    sent_at: datetime = Field(sa_type=UtcDateTime)


class PeriodRow(SQLModel, table=True):
    """The period ledger: a scheduled digest period decided for a subscriber, sent or empty.

    Kept apart from deliveries because an empty period sends nothing yet must not be decided
    again, and because APScheduler forgets runs missed while the daemon was down.
    """

    __tablename__ = "digest_periods"
    __table_args__ = (UniqueConstraint("subscriber_id", "period_key"),)
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    period_key: str  # the subscriber's local date of the send, see periods.Period
    due_at: datetime = Field(sa_type=UtcDateTime)
    decided_at: datetime = Field(sa_type=UtcDateTime)
    papers: int = 0


class SourceRunRow(SQLModel, table=True):
    """How the scheduler's last ingest of one source went."""

    __tablename__ = "source_runs"
    source: str = Field(primary_key=True)  # SourceSpec.name
    last_run_at: datetime = Field(sa_type=UtcDateTime)
    last_success_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    new_papers: int = 0
    error: str | None = None
    failures: int = 0  # consecutive failed runs


class JobRow(SQLModel, table=True):
    """A scheduler job as the running daemon last saw it, for `digestbot status`."""

    __tablename__ = "scheduler_jobs"
    id: str = Field(primary_key=True)
    description: str
    next_run_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_run_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_result: str | None = None


class LeaseRow(SQLModel, table=True):
    """Who runs the daemon on this database: one row, renewed while it lives."""

    __tablename__ = "daemon_lease"
    name: str = Field(primary_key=True)
    owner: str  # host:pid
    acquired_at: datetime = Field(sa_type=UtcDateTime)
    heartbeat_at: datetime = Field(sa_type=UtcDateTime)


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


def make_engine(url: str) -> Engine:
    """Create the engine for `url` and the tables; SQLite gets WAL and a busy timeout."""
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
        SQLModel.metadata.create_all(engine)
        upgrade(engine)
    except SQLAlchemyError as exc:
        raise ConfigError(
            f"cannot open the database {url!r}: {exc.__class__.__name__}: {exc.args[0]}",
            "check that its folder exists and is writable",
        ) from None
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
