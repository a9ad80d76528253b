"""Schedule stage, run-state storage: digest periods decided, source runs, jobs and the lease."""

from __future__ import annotations

import functools
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Connection, Engine, delete, insert, update
from sqlmodel import Session, col, select

from digestbot.delivery.outbox import owner
from digestbot.store.engine import write_session
from digestbot.store.tables import JobRow, LeaseRow, PeriodRow, SourceRunRow

LEASE = "run"


@dataclass(frozen=True)
class Decided:
    """A scheduled period decided in this run: for whom, which, when due, how many papers."""

    subscriber_id: int
    period_key: str
    due_at: datetime
    papers: int


class ByChunk:
    """Decided periods, by subscriber, for a batch committed chunk by chunk: each is added
    with the chunk that queues its email, and those with nothing to send (`quiet`) with the
    first commit."""

    def __init__(
        self, periods: Mapping[int, Decided], sending: Collection[int], *, now: datetime
    ) -> None:
        self.periods = periods
        self.quiet = [entry for sub_id, entry in periods.items() if sub_id not in sending]
        self.now = now

    def record(
        self, subscriber_ids: Iterable[int], first: bool
    ) -> Callable[[Session], None] | None:
        """What a chunk's commit adds: its subscribers' periods (and, if `first`, the quiet
        ones), or None when that is nothing."""
        entries = [self.periods[i] for i in subscriber_ids if i in self.periods]
        entries += self.quiet if first else []
        if not entries:
            return None
        return functools.partial(record_periods, decided=entries, now=self.now)


def decided_keys(
    engine: Engine, keys: Collection[str], span: tuple[int, int] | None = None
) -> set[tuple[int, str]]:
    """(subscriber, period key) pairs decided, sent or empty, among periods keyed `keys` (of
    subscribers with ids in `span`, when given): read through the period-key index, as many
    rows as subscribers, however long the ledger."""
    if not keys:
        return set()
    query = select(PeriodRow.subscriber_id, PeriodRow.period_key).where(
        col(PeriodRow.period_key).in_(sorted(keys))
    )
    if span is not None:
        query = query.where(col(PeriodRow.subscriber_id).between(*span))
    with Session(engine) as session:
        rows = session.exec(query).all()
    return {(sub_id, key) for sub_id, key in rows}


def record_periods(session: Session, decided: Sequence[Decided], *, now: datetime) -> None:
    """Add decided periods inside the caller's transaction (the one that queues their emails)."""
    for entry in decided:
        session.add(
            PeriodRow(
                subscriber_id=entry.subscriber_id,
                period_key=entry.period_key,
                due_at=entry.due_at,
                decided_at=now,
                papers=entry.papers,
            )
        )


def insert_periods(connection: Connection, decided: Sequence[Decided], *, now: datetime) -> None:
    """Add decided periods in the caller's transaction (a worker's slice, with its emails)."""
    if decided:
        rows = [
            {
                "subscriber_id": entry.subscriber_id,
                "period_key": entry.period_key,
                "due_at": entry.due_at,
                "decided_at": now,
                "papers": entry.papers,
            }
            for entry in decided
        ]
        connection.execute(insert(PeriodRow), rows)


def record_source_run(
    engine: Engine, source: str, *, now: datetime, new: int = 0, error: str | None = None
) -> int:
    """Note how an ingest of `source` went; return its consecutive failures so far."""
    with write_session(engine) as session:
        row = session.get(SourceRunRow, source) or SourceRunRow(source=source, last_run_at=now)
        row.last_run_at, row.error = now, error
        if error is None:
            row.last_success_at, row.new_papers, row.failures = now, new, 0
        else:
            row.failures += 1
        session.add(row)
        return row.failures


def source_runs(engine: Engine) -> dict[str, SourceRunRow]:
    """The last run of every source the daemon has ingested."""
    with Session(engine) as session:
        return {row.source: row for row in session.exec(select(SourceRunRow))}


def save_jobs(engine: Engine, jobs: Sequence[JobRow]) -> None:
    """Make the recorded job list the daemon's current one: new jobs added, gone ones
    dropped, each kept job's description and next run updated and its last run kept."""
    with write_session(engine) as session:
        session.exec(delete(JobRow).where(col(JobRow.id).not_in([job.id for job in jobs])))
        for job in jobs:
            row = session.get(JobRow, job.id) or JobRow(id=job.id, description=job.description)
            row.description, row.next_run_at = job.description, job.next_run_at
            session.add(row)


def note_job_run(engine: Engine, job_id: str, *, now: datetime, result: str) -> None:
    """Record when a job last ran and what it did."""
    with write_session(engine) as session:
        session.exec(
            update(JobRow)
            .where(col(JobRow.id) == job_id)
            .values(last_run_at=now, last_result=result)
        )


def jobs(engine: Engine) -> list[JobRow]:
    """The jobs the daemon recorded, soonest first."""
    with Session(engine) as session:
        return list(session.exec(select(JobRow).order_by(col(JobRow.next_run_at), col(JobRow.id))))


def take_lease(engine: Engine, *, now: datetime) -> None:
    """Record this process as the daemon, whatever the row said before: only the holder of
    the daemon lock (store.lock) calls it, so a row naming anyone else is stale."""
    with write_session(engine) as session:
        session.merge(LeaseRow(name=LEASE, owner=owner(), acquired_at=now, heartbeat_at=now))


def renew_lease(engine: Engine, *, now: datetime) -> None:
    """Note that we are still running, for `digestbot status`."""
    with write_session(engine) as session:
        session.exec(
            update(LeaseRow)
            .where(col(LeaseRow.name) == LEASE, col(LeaseRow.owner) == owner())
            .values(heartbeat_at=now)
        )


def release_lease(engine: Engine) -> None:
    """Give the lease up on a clean stop, and forget the jobs (nothing is scheduled now)."""
    with write_session(engine) as session:
        session.exec(
            delete(LeaseRow).where(col(LeaseRow.name) == LEASE, col(LeaseRow.owner) == owner())
        )
        session.exec(delete(JobRow))


def lease(engine: Engine) -> LeaseRow | None:
    """The daemon lease as it stands, if any."""
    with Session(engine) as session:
        row = session.get(LeaseRow, LEASE)
        if row is not None:
            session.expunge(row)
        return row
