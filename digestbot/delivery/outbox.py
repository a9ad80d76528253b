"""Delivery stage, outbox: rows committed before sending, claimed one at a time, closed once
(the claims themselves are in `claims`).

States: pending -> sending -> sent | retry (next_attempt_at) | failed | unknown.
A row is claimed with a conditional UPDATE (inside BEGIN IMMEDIATE on SQLite; after
SELECT … FOR UPDATE SKIP LOCKED on PostgreSQL), so two processes never send the same row.
A row left in `sending` by a dead process becomes `unknown`: the server may or may not have
it, so it is resent only on request (`send-now --resend-unknown`), with its original Message-ID.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, delete, func, update
from sqlmodel import Session, col, select

from digestbot.delivery.transport import Outbound
from digestbot.errors import DeliveryError
from digestbot.store.engine import sql, write_session
from digestbot.store.tables import (
    CLAIMABLE,
    FINISHED,
    DeliveryRow,
    MessageRow,
    PaperRow,
)

PLAN_ATTEMPTS = 5  # plan-and-enqueue rounds before giving up to a busier process
_LAST_ROW = sql("SELECT max(id) FROM deliveries")  # the state token


class PlanConflict(Exception):
    """Another process committed deliveries between our plan and our enqueue."""


def too_busy(hint: str) -> DeliveryError:
    """The error once PLAN_ATTEMPTS rounds all lost to other runs."""
    return DeliveryError("other runs kept changing the outbox", hint)


@dataclass(frozen=True)
class Outgoing:
    """A decided email: who gets it, which papers it carries, and the message as bytes with
    its envelope (flattened at once, so thousands of queued digests do not hold MIME object
    trees)."""

    subscriber_id: int
    kind: str
    period_key: str
    message_id: str
    outbound: Outbound
    paper_ids: tuple[str, ...]
    # Why this email could not be planned or rendered: its row is stored `failed`, with no
    # message, so the subscriber's problem shows in `status` and the batch goes on.
    problem: str | None = None
    left_out: tuple[str, ...] = ()  # matching papers a digest had no room for

    @property
    def raw(self) -> bytes:
        return self.outbound.raw


@dataclass(frozen=True)
class Queued:
    """A delivery row ready to be sent."""

    id: int
    subscriber_id: int
    outbound: Outbound
    paper_count: int
    attempts: int


def owner() -> str:
    """Who claims rows: this host and process."""
    return f"{socket.gethostname()}:{os.getpid()}"


def state_token(engine: Engine) -> int:
    """Changes whenever a delivery is created: the newest row's id, read through the primary
    key, as `enqueue` checks it. (An email sent meanwhile needs no new plan: planning reads
    the emails on their way before the papers sent, see rules.history.taken_since.)"""
    with engine.connect() as connection:
        return int(connection.execute(_LAST_ROW).scalar_one() or 0)


# A row that may be sent at :now: pending, or a retry whose time has come. The senders'
# claims (claims.py) test the same condition, so a listed id is one they can take.
DUE_SQL = (
    "status IN (" + ", ".join(f"'{state}'" for state in CLAIMABLE) + ") "
    "AND (next_attempt_at IS NULL OR next_attempt_at <= :now)"
)
DUE = sql(DUE_SQL)


def enqueue(
    engine: Engine,
    outgoing: Sequence[Outgoing],
    *,
    now: datetime,
    token: int | None = None,
    after: int | None = None,
    also: Callable[[Session], None] | None = None,
) -> list[int]:
    """Commit one pending row per email in one write transaction; return their ids.

    With `token` (from state_token before planning), raise PlanConflict if anything was
    enqueued since, so the caller plans again instead of sending a paper twice.
    With `after` (the last id this run enqueued, for its next chunk of the same plan), raise
    it if anyone else enqueued since; rows of that plan being sent meanwhile are no conflict,
    since their papers were spoken for when the plan was made.
    `also` adds writes that must commit or fail with these rows (the period ledger).
    """
    with write_session(engine) as session:
        connection = session.connection()
        if connection.dialect.name == "postgresql" and outgoing:
            # Wait for any worker's slice holding these readers (schedule.slices) to commit,
            # so the check below sees what it queued for them.
            readers = sorted({item.subscriber_id for item in outgoing})
            connection.execute(_LOCK_READERS, {"ids": readers}).all()
        last_row = connection.execute(_LAST_ROW).scalar_one() or 0
        if token is not None and last_row != token:
            raise PlanConflict
        if after is not None and last_row != after:
            raise PlanConflict
        ids = insert_rows(connection, outgoing, now=now)
        if also is not None:
            also(session)
        return ids


def insert_rows(
    connection: Connection, outgoing: Sequence[Outgoing], *, now: datetime
) -> list[int]:
    """Insert one pending row (and its message) per email in the caller's transaction;
    return their ids, in order."""
    # One INSERT … RETURNING a row: a multi-row one does not promise its ids in order.
    ids = [connection.execute(_INSERT_ROW, _row(item, now)).scalar_one() for item in outgoing]
    messages = [
        {"id": i, "raw": o.raw} for i, o in zip(ids, outgoing, strict=True) if o.problem is None
    ]
    if messages:
        connection.execute(_INSERT_MESSAGE, messages)
    return ids


_LOCK_READERS = sql("SELECT id FROM subscribers WHERE id = ANY(:ids) ORDER BY id FOR UPDATE")
# Run for every chunk of a batch.
_INSERT_ROW = sql(
    "INSERT INTO deliveries (subscriber_id, kind, period_key, message_id, status, attempts, "
    "paper_ids, left_out, created_at, updated_at, sender, recipient, last_error) VALUES "
    "(:subscriber_id, :kind, :period_key, :message_id, :status, 0, :paper_ids, :left_out, "
    ":now, :now, :sender, :recipient, :last_error) RETURNING id"
)
_INSERT_MESSAGE = sql("INSERT INTO delivery_messages (delivery_id, raw) VALUES (:id, :raw)")


def _row(item: Outgoing, now: datetime) -> dict[str, Any]:
    return {
        "subscriber_id": item.subscriber_id,
        "kind": item.kind,
        "period_key": item.period_key,
        "message_id": item.message_id,
        "paper_ids": json.dumps(list(item.paper_ids)),
        "left_out": json.dumps(list(item.left_out)),
        "now": now,
        "status": "pending" if item.problem is None else "failed",
        "last_error": item.problem,
        "sender": item.outbound.sender,
        "recipient": item.outbound.recipients[0] if item.outbound.recipients else "",
    }


def due_ids(
    engine: Engine, *, now: datetime, subscriber_ids: Sequence[int] | None = None
) -> list[int]:
    """Ids of rows to send now (pending, and retries whose time has come), oldest first.

    Only ids: each message is read when its row is claimed, so a big outbox is never held
    in memory at once.
    """
    query = select(DeliveryRow.id).where(DUE)
    if subscriber_ids is not None:
        query = query.where(col(DeliveryRow.subscriber_id).in_(subscriber_ids))
    with Session(engine) as session:
        found = session.execute(query.order_by(col(DeliveryRow.id)), {"now": now})
        return list(found.scalars())


@dataclass(frozen=True)
class Waiting:
    """An email queued for a subscriber and not sent yet: pending, or retry at a set time."""

    id: int
    subscriber_id: int
    kind: str
    status: str
    papers: tuple[tuple[str, str], ...]  # (id, title), in the email's order
    next_attempt_at: datetime | None


def waiting(engine: Engine, subscriber_ids: Sequence[int]) -> list[Waiting]:
    """The pending and retry rows of these subscribers, oldest first, with their papers'
    titles: what the next send will try before anything newly decided."""
    query = select(DeliveryRow).where(
        col(DeliveryRow.status).in_(CLAIMABLE), col(DeliveryRow.subscriber_id).in_(subscriber_ids)
    )
    with Session(engine) as session:
        found = list(session.exec(query.order_by(col(DeliveryRow.id))))
        ids = {pid for row in found for pid in row.paper_ids}
        titles = dict(
            session.exec(select(PaperRow.id, PaperRow.title).where(col(PaperRow.id).in_(ids))).all()
        )
    return [
        Waiting(
            id=row.id or 0,
            subscriber_id=row.subscriber_id,
            kind=row.kind,
            status=row.status,
            papers=tuple((pid, titles.get(pid, "")) for pid in row.paper_ids),
            next_attempt_at=row.next_attempt_at,
        )
        for row in found
    ]


def stored_message(engine: Engine, delivery_id: int) -> bytes | None:
    """The message of a delivery row, byte for byte as it will be sent; None once dropped."""
    with Session(engine) as session:
        row = session.get(MessageRow, delivery_id)
        return None if row is None else bytes(row.raw)


def recover(engine: Engine, *, now: datetime, lease: timedelta) -> int:
    """Rows left `sending` by a process that died (or outlived its lease) become `unknown`."""
    host = socket.gethostname()
    recovered = 0
    with write_session(engine) as session:
        for row in session.exec(select(DeliveryRow).where(DeliveryRow.status == "sending")):
            dead = not claimer_alive(row.claimed_by or ":", host)
            expired = row.claimed_at is None or row.claimed_at + lease < now
            if dead or expired:
                row.status, row.updated_at = "unknown", now
                row.last_error = f"interrupted while sending (claimed by {row.claimed_by})"
                session.add(row)
                recovered += 1
    return recovered


def claimer_alive(claimed_by: str, host: str) -> bool:
    """False only when `claimed_by` ("host:pid") ran on `host` and that process is gone."""
    claimer_host, _, pid = claimed_by.rpartition(":")
    return not (claimer_host == host and pid.isdigit() and not _alive(int(pid)))


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def resend_unknown(engine: Engine, *, now: datetime) -> int:
    """Put every `unknown` row back to pending; it keeps its message and Message-ID."""
    with write_session(engine) as session:
        result = session.exec(
            update(DeliveryRow)
            .where(col(DeliveryRow.status) == "unknown")
            .values(status="pending", updated_at=now, next_attempt_at=None)
        )
        return int(result.rowcount)


def forget_messages(engine: Engine, *, until: datetime) -> int:
    """Drop the stored messages of rows that were sent or failed at or before `until`:
    nothing sends them again (only pending, retry and unknown rows go out), and at ~55 kB
    an email they would grow the database every day it runs. Returns how many."""
    # From the messages still stored (about DIGESTBOT_KEEP_MESSAGES_DAYS of them) to their
    # rows by primary key, not from every row ever finished.
    finished = (
        select(MessageRow.delivery_id)
        .join(DeliveryRow, col(DeliveryRow.id) == col(MessageRow.delivery_id))
        .where(col(DeliveryRow.status).in_(FINISHED), col(DeliveryRow.updated_at) <= until)
    )
    with write_session(engine) as session:
        result = session.exec(delete(MessageRow).where(col(MessageRow.delivery_id).in_(finished)))
        return int(result.rowcount)


def counts_by_status(engine: Engine) -> dict[str, int]:
    """How many delivery rows are in each state."""
    with Session(engine) as session:
        rows = session.exec(
            select(DeliveryRow.status, func.count()).group_by(col(DeliveryRow.status))
        ).all()
    return dict(rows)


def note_held_back(engine: Engine, reason: str, *, now: datetime) -> int:
    """Record on every pending row why it was not sent (the server was unreachable), for
    `status`; the row stays pending, and its next attempt clears or replaces the note."""
    with write_session(engine) as session:
        result = session.exec(
            update(DeliveryRow)
            .where(col(DeliveryRow.status) == "pending")
            .values(last_error=reason, updated_at=now)
        )
        return int(result.rowcount)


def problem_rows(engine: Engine) -> list[DeliveryRow]:
    """Rows needing a person's attention or waiting to retry: unknown, failed, retry, and
    pending rows held back by an unreachable server."""
    held_back = (col(DeliveryRow.status) == "pending") & col(DeliveryRow.last_error).is_not(None)
    with Session(engine) as session:
        query = select(DeliveryRow).where(
            col(DeliveryRow.status).in_(("unknown", "failed", "retry")) | held_back
        )
        return list(session.exec(query.order_by(col(DeliveryRow.id))))
