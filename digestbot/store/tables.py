"""Store stage: the tables, as SQLModel classes (the migrations in `store/migrations` make them)."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    CheckConstraint,
    Column,
    DateTime,
    Index,
    LargeBinary,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlmodel import Field, SQLModel

# The states of a delivery row (see delivery.outbox), and groups of them.
STATES = ("pending", "sending", "sent", "retry", "failed", "unknown", "cancelled")
OPEN = ("pending", "sending", "retry", "unknown")  # papers in these rows are spoken for
CLAIMABLE = ("pending", "retry")
FINISHED = ("sent", "failed", "cancelled")  # never sent again
KINDS = ("digest", "alert")
# How an arXiv lookup of a title-only paper ended (see ingest.enrich).
ENRICH_OUTCOMES = ("adopted", "none", "elsewhere")

# JSON in SQLite (text that its JSON functions read), JSONB in PostgreSQL.
Json = JSON().with_variant(JSONB(), "postgresql")


def _one_of(table: str, column: str, values: tuple[str, ...]) -> CheckConstraint:
    allowed = ", ".join(f"'{value}'" for value in values)
    return CheckConstraint(f"{column} IN ({allowed})", name=f"ck_{table}_{column}")


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
    norm_title: str
    abstract: str
    arxiv_id: str | None = Field(default=None, index=True)
    authors: list[str] = Field(default_factory=list, sa_type=Json)
    author_count: int | None = None
    organisation: str | None = None
    published: date | None = None
    upvotes: int | None = None
    comments: int | None = None
    categories: list[str] = Field(default_factory=list, sa_type=Json)
    links: dict[str, str] = Field(default_factory=dict, sa_type=Json)  # kind -> URL
    keywords: list[str] = Field(default_factory=list, sa_type=Json)
    sources: list[str] = Field(default_factory=list, sa_type=Json)  # those that listed it
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
    # Papers no rule chose that the reader's votes recommend (`recommend:`), per digest.
    recommend: int = Field(default=0, sa_column_kwargs={"server_default": "0"})


class RuleRow(SQLModel, table=True):
    """One rule of a subscriber, its body kept as JSON so the rule language can grow."""

    __tablename__ = "rules"
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id", index=True)
    position: int
    name: str
    # The resolved rule, topics included (see subscribers.rule_to_json).
    body: dict[str, Any] = Field(sa_type=Json)


class DeliveryRow(SQLModel, table=True):
    """One email: decided and stored before it is sent, so nothing is lost between steps."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "kind", "period_key"),
        # A subscriber's last digest, and their alerts today, read without a scan.
        Index("ix_deliveries_subscriber_kind_created", "subscriber_id", "kind", "created_at"),
        _one_of("deliveries", "status", STATES),
        _one_of("deliveries", "kind", KINDS),
        CheckConstraint("attempts >= 0", name="ck_deliveries_attempts"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id")
    kind: str = "digest"
    period_key: str
    message_id: str = Field(unique=True)
    status: str = Field(default="pending", index=True)  # see STATES
    attempts: int = 0
    next_attempt_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    claimed_by: str | None = None  # "host:pid" of the process sending it
    claimed_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    paper_ids: list[str] = Field(default_factory=list, sa_type=Json)  # sent when accepted
    # Matching papers a digest had no room for: its subscriber's next digest may take them.
    left_out: list[str] = Field(
        default_factory=list, sa_type=Json, sa_column_kwargs={"server_default": "[]"}
    )
    created_at: datetime = Field(sa_type=UtcDateTime)
    updated_at: datetime = Field(sa_type=UtcDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UtcDateTime)
    last_error: str | None = None
    delivered_to: str | None = None
    # The envelope, fixed when the row is created and sent as it is: never read back from the
    # message's headers, where a folded display name can hide the address.
    sender: str = Field(default="", sa_column_kwargs={"server_default": ""})
    recipient: str = Field(default="", sa_column_kwargs={"server_default": ""})


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
    __table_args__ = (
        UniqueConstraint("subscriber_id", "period_key"),
        # A subscriber's latest decided period, read without a scan.
        Index("ix_digest_periods_subscriber_decided", "subscriber_id", "decided_at"),
    )
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id")
    # The subscriber's local date of the send (see periods.Period), searched on every tick.
    period_key: str = Field(index=True)
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


class SuppressionRow(SQLModel, table=True):
    """An address that asked to get nothing more: no digest or alert goes to it, whatever
    the subscriptions file says, until the operator resubscribes it."""

    __tablename__ = "suppressions"
    email: str = Field(primary_key=True)
    created_at: datetime = Field(sa_type=UtcDateTime)
    via: str  # "link" (the reader, from an email) or "operator" (`digestbot unsubscribe`)


class VoteRow(SQLModel, table=True):
    """A reader's word on a paper ("up": more like this, "down": not relevant); the latest
    vote wins."""

    __tablename__ = "votes"
    __table_args__ = (
        UniqueConstraint("subscriber_id", "paper_id"),
        _one_of("votes", "vote", ("up", "down")),
    )
    id: int | None = Field(default=None, primary_key=True)
    subscriber_id: int = Field(foreign_key="subscribers.id")
    paper_id: str = Field(foreign_key="papers.id")
    vote: str
    voted_at: datetime = Field(sa_type=UtcDateTime)
    digest: str = ""  # the period key of the digest whose link it came from


class EnrichmentRow(SQLModel, table=True):
    """The last arXiv lookup of a paper known only by its title: a lookup that found nothing
    (or found a paper stored under another id) is not repeated before the retry window ends."""

    __tablename__ = "enrichment"
    __table_args__ = (_one_of("enrichment", "outcome", ENRICH_OUTCOMES),)
    paper_id: str = Field(foreign_key="papers.id", primary_key=True)
    tried_at: datetime = Field(sa_type=UtcDateTime)
    outcome: str  # see ENRICH_OUTCOMES
    arxiv_id: str | None = None  # the id adopted, or the one another stored paper has
    detail: str = ""


class PaperVectorRow(SQLModel, table=True):
    """A paper's embedding by one model (float32 bytes), computed once and kept."""

    __tablename__ = "paper_vectors"
    paper_id: str = Field(foreign_key="papers.id", primary_key=True)
    model: str = Field(primary_key=True)
    vector: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class FolderFileRow(SQLModel, table=True):
    """A file a `kind: folder` source ingested: its content's hash, so a run ingests only
    the files that are new or changed since."""

    __tablename__ = "folder_files"
    path: str = Field(primary_key=True)  # absolute
    source: str  # SourceSpec.name of the folder source
    sha256: str
    ingested_at: datetime = Field(sa_type=UtcDateTime)


TASK_STATES = ("waiting", "working", "done", "failed")


class TaskRow(SQLModel, table=True):
    """A slice of a round's work (subscribers `first_id`..`last_id` of one digest period or
    one ingest's alerts), taken by one worker at a time under a lease (see schedule.tasks)."""

    __tablename__ = "work_tasks"
    __table_args__ = (
        UniqueConstraint("kind", "round", "first_id"),
        _one_of("work_tasks", "kind", KINDS),
        _one_of("work_tasks", "state", TASK_STATES),
    )
    id: int | None = Field(default=None, primary_key=True)
    kind: str  # see KINDS
    round: str  # what the round is for: the moment it was made, as ISO text
    at: datetime = Field(sa_type=UtcDateTime)  # the round's `now`: what its digests are decided at
    first_id: int
    last_id: int
    state: str = Field(default="waiting", index=True)
    worker: str | None = None  # host:pid holding or finishing it
    lease_until: datetime | None = Field(default=None, sa_type=UtcDateTime)
    attempts: int = 0
    emails: int = 0
    seconds: float = 0.0  # the last attempt's planning, rendering and queueing
    waited: float = 0.0  # of which waiting for the slice's subscribers' row locks
    error: str | None = None
    created_at: datetime = Field(sa_type=UtcDateTime)
    finished_at: datetime | None = Field(default=None, sa_type=UtcDateTime)


class WorkerRow(SQLModel, table=True):
    """A `digestbot worker` (or a `run` that works) as it last reported itself."""

    __tablename__ = "workers"
    name: str = Field(primary_key=True)  # host:pid
    started_at: datetime = Field(sa_type=UtcDateTime)
    heartbeat_at: datetime = Field(sa_type=UtcDateTime)
    slices: int = 0  # slices done
    emails: int = 0  # emails sent
