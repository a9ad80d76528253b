"""Schedule stage, shared work: rounds split into slices of subscribers, claimed by workers
with `FOR UPDATE SKIP LOCKED` under a lease, and the workers' own rows (PostgreSQL).

A slice is `waiting` until a worker takes it (`working`, until `lease_until`), then `done`,
or `waiting` again after a failed attempt (`failed` after MAX_ATTEMPTS). A worker that dies
leaves its slice `working` with a lease that runs out; the next claim takes it over.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, Engine, delete, func, insert
from sqlmodel import Session, col, select

from digestbot.schedule.periods import latest_period
from digestbot.settings import Settings
from digestbot.store.engine import sql
from digestbot.store.tables import SubscriberRow, TaskRow, WorkerRow

MAX_ATTEMPTS = 5  # attempts at a slice before it is left `failed` for `status` to show
KEEP_DONE = timedelta(days=7)  # finished slices kept for `status`, then dropped


@dataclass(frozen=True)
class Task:
    """A slice a worker holds: which work, for which subscribers, decided at which moment."""

    id: int
    kind: str  # "digest" or "alert"
    round: str
    at: datetime
    first_id: int
    last_id: int
    attempts: int  # including this one

    @property
    def span(self) -> tuple[int, int]:
        return (self.first_id, self.last_id)


def make_round(engine: Engine, kind: str, *, at: datetime, size: int, now: datetime) -> int:
    """Split the active subscribers' ids into slices of `size` ids, each a waiting task of a
    round decided at `at`; a round made already is not made twice. Returns slices added."""
    with Session(engine) as session, session.begin():
        query = select(func.min(SubscriberRow.id), func.max(SubscriberRow.id))
        low, high = session.exec(query.where(col(SubscriberRow.active))).one()
        if low is None or high is None:
            return 0
        name = at.isoformat()
        made = session.exec(select(TaskRow.id).where(TaskRow.kind == kind, TaskRow.round == name))
        if made.first() is not None:
            return 0
        rows = [
            {
                "kind": kind,
                "round": name,
                "at": at,
                "first_id": first,
                "last_id": min(first + size - 1, high),
                "state": "waiting",
                "attempts": 0,
                "emails": 0,
                "seconds": 0.0,
                "waited": 0.0,
                "created_at": now,
            }
            for first in range(low, high + 1, size)
        ]
        session.connection().execute(insert(TaskRow), rows)
        return len(rows)


def latest_round(engine: Engine, kind: str) -> datetime | None:
    """When the newest round of `kind` was decided, if any."""
    with Session(engine) as session:
        return session.exec(select(func.max(TaskRow.at)).where(TaskRow.kind == kind)).one()


_TAKE = sql(
    "SELECT id FROM work_tasks WHERE state = 'waiting' OR (state = 'working' AND "
    "lease_until < :now) ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED"
)
_HOLD = sql(
    "UPDATE work_tasks SET state = 'working', worker = :by, lease_until = :until, "
    "attempts = attempts + 1 WHERE id = :id "
    "RETURNING id, kind, round, at, first_id, last_id, attempts"
)


def claim(engine: Engine, *, by: str, now: datetime, lease: timedelta) -> Task | None:
    """Take the oldest waiting slice (or one whose worker's lease ran out), skipping those
    another worker is taking right now; None when there is none."""
    with engine.connect() as connection, connection.begin():
        found = connection.execute(_TAKE, {"now": now}).first()
        if found is None:
            return None
        params = {"id": found.id, "by": by, "until": now + lease}
        row = connection.execute(_HOLD, params).one()
    at = row.at.replace(tzinfo=UTC)  # stored as naive UTC (see tables.UtcDateTime)
    return Task(row.id, row.kind, row.round, at, row.first_id, row.last_id, row.attempts)


_FINISH = sql(
    "UPDATE work_tasks SET state = 'done', emails = :emails, seconds = :seconds, "
    "waited = :waited, error = NULL, finished_at = :now, lease_until = NULL "
    "WHERE id = :id AND worker = :by AND state = 'working' RETURNING id"
)


def finish(
    connection: Connection,
    task: Task,
    *,
    by: str,
    now: datetime,
    emails: int,
    seconds: float,
    waited: float,
) -> bool:
    """Mark the slice done inside the transaction that queued its emails; False (and the
    caller rolls back) when it is no longer this worker's, its lease taken over."""
    params = {
        "id": task.id,
        "by": by,
        "now": now,
        "emails": emails,
        "seconds": seconds,
        "waited": waited,
    }
    return connection.execute(_FINISH, params).first() is not None


_GIVE_BACK = sql(
    "UPDATE work_tasks SET state = CASE WHEN attempts >= :most THEN 'failed' ELSE 'waiting' END, "
    "error = :error, lease_until = NULL, finished_at = CASE WHEN attempts >= :most THEN :now END "
    "WHERE id = :id AND worker = :by AND state = 'working'"
)


def give_back(engine: Engine, task: Task, *, by: str, now: datetime, error: str) -> None:
    """Return a slice whose attempt failed, to be tried again (or left failed, with why)."""
    params = {"id": task.id, "by": by, "now": now, "error": error[:500], "most": MAX_ATTEMPTS}
    with engine.begin() as connection:
        connection.execute(_GIVE_BACK, params)


def counts(engine: Engine) -> dict[str, int]:
    """How many slices are in each state."""
    with Session(engine) as session:
        query = select(TaskRow.state, func.count()).group_by(col(TaskRow.state))
        return dict(session.exec(query).all())


def failed_tasks(engine: Engine) -> list[TaskRow]:
    """The slices given up on, newest first, with why."""
    with Session(engine) as session:
        query = select(TaskRow).where(TaskRow.state == "failed")
        return list(session.exec(query.order_by(col(TaskRow.id).desc())))


def prune(engine: Engine, *, now: datetime) -> int:
    """Drop slices done or given up on longer than KEEP_DONE ago, and workers silent for
    as long."""
    until = now - KEEP_DONE
    finished = col(TaskRow.state).in_(("done", "failed"))
    with engine.begin() as connection:
        done = connection.execute(
            delete(TaskRow).where(finished, col(TaskRow.finished_at) < until)
        ).rowcount
        connection.execute(delete(WorkerRow).where(col(WorkerRow.heartbeat_at) < until))
    return int(done)


# -- workers ---------------------------------------------------------------------------------


def register(engine: Engine, name: str, *, now: datetime) -> None:
    """Record a worker starting (a name reused by a new process starts afresh)."""
    with Session(engine) as session, session.begin():
        session.merge(WorkerRow(name=name, started_at=now, heartbeat_at=now))


def beat(engine: Engine, name: str, *, now: datetime, slices: int, emails: int) -> None:
    """Note that the worker lives, with what it did so far."""
    with Session(engine) as session, session.begin():
        row = session.get(WorkerRow, name) or WorkerRow(name=name, started_at=now, heartbeat_at=now)
        row.heartbeat_at, row.slices, row.emails = now, slices, emails
        session.add(row)


def leave(engine: Engine, name: str) -> None:
    """Forget a worker that stopped cleanly."""
    with engine.begin() as connection:
        connection.execute(delete(WorkerRow).where(col(WorkerRow.name) == name))


def live_workers(engine: Engine, *, now: datetime, within: timedelta) -> list[WorkerRow]:
    """Workers heard from within `within` of `now`, longest running first."""
    with Session(engine) as session:
        query = select(WorkerRow).where(col(WorkerRow.heartbeat_at) >= now - within)
        found = list(session.exec(query.order_by(col(WorkerRow.started_at), col(WorkerRow.name))))
        for row in found:
            session.expunge(row)
        return found


def start_digest_round(engine: Engine, settings: Settings, *, now: datetime) -> int:
    """Make a digest round at `now` when a digest period has come due for any schedule
    since the last round (each slice then decides which of its subscribers are due);
    returns the slices made. Finished slices past KEEP_DONE are dropped meanwhile."""
    with Session(engine) as session:
        query = select(SubscriberRow.timezone, SubscriberRow.send_at, SubscriberRow.frequency)
        schedules = session.exec(query.where(col(SubscriberRow.active)).distinct()).all()
    dues = [latest_period(tz, send_at, frequency, now) for tz, send_at, frequency in schedules]
    latest = max((period.due_at for period in dues if period is not None), default=None)
    last = latest_round(engine, "digest")
    if latest is None or (last is not None and latest <= last):
        return 0
    prune(engine, now=now)
    return make_round(engine, "digest", at=now, size=settings.slice_size, now=now)
