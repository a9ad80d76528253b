"""Outbox stage: delivery rows committed before sending, claimed one at a time, closed once.

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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, bindparam, func, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from digestbot.db import DeliveryRow, SentPaperRow, UtcDateTime, write_session
from digestbot.mailer import Outbound

STATES = ("pending", "sending", "sent", "retry", "failed", "unknown")
OPEN = ("pending", "sending", "retry", "unknown")  # papers in these rows are spoken for
CLAIMABLE = ("pending", "retry")


class PlanConflict(Exception):
    """Another process committed deliveries between our plan and our enqueue."""


@dataclass(frozen=True)
class Outgoing:
    """A decided email: who gets it, which papers it carries, and the message as bytes
    (flattened at once, so thousands of queued digests do not hold MIME object trees)."""

    subscriber_id: int
    kind: str
    period_key: str
    message_id: str
    raw: bytes
    paper_ids: tuple[str, ...]


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


def state_token(engine: Engine) -> tuple[int, int]:
    """Changes whenever a delivery is created or a paper recorded as sent."""
    with Session(engine) as session:
        last_row = session.exec(select(func.max(DeliveryRow.id))).one()
        sent = session.exec(select(func.count()).select_from(SentPaperRow)).one()
    return (last_row or 0, sent)


def decided_state(engine: Engine) -> tuple[dict[int, datetime], dict[int, set[str]]]:
    """Per subscriber: when their last digest was decided, and papers sent or on their way.

    A failed delivery does not count, so its papers stay eligible for the next digest.
    """
    with Session(engine) as session:
        last = session.exec(
            select(DeliveryRow.subscriber_id, func.max(DeliveryRow.created_at))
            .where(DeliveryRow.status != "failed", DeliveryRow.kind == "digest")
            .group_by(col(DeliveryRow.subscriber_id))
        ).all()
        taken: dict[int, set[str]] = {}
        for sub_id, paper_id in session.exec(
            select(SentPaperRow.subscriber_id, SentPaperRow.paper_id)
        ):
            taken.setdefault(sub_id, set()).add(paper_id)
        for row in session.exec(select(DeliveryRow).where(col(DeliveryRow.status).in_(OPEN))):
            taken.setdefault(row.subscriber_id, set()).update(json.loads(row.paper_ids))
    return {sub_id: when for sub_id, when in last}, taken


def enqueue(
    engine: Engine,
    outgoing: Sequence[Outgoing],
    *,
    now: datetime,
    token: tuple[int, int] | None = None,
    after: int | None = None,
    also: Callable[[Session], None] | None = None,
) -> list[int]:
    """Commit one pending row per email in one write transaction; return their ids.

    With `token` (from state_token before planning), raise PlanConflict if anything was
    enqueued or sent since, so the caller plans again instead of sending a paper twice.
    With `after` (the last id this run enqueued, for its next chunk of the same plan), raise
    it if anyone else enqueued since; rows of that plan being sent meanwhile are no conflict,
    since their papers were spoken for when the plan was made.
    `also` adds writes that must commit or fail with these rows (the period ledger).
    """
    with write_session(engine) as session:
        last_row = session.exec(select(func.max(DeliveryRow.id))).one() or 0
        if token is not None:
            sent = session.exec(select(func.count()).select_from(SentPaperRow)).one()
            if (last_row, sent) != token:
                raise PlanConflict
        if after is not None and last_row != after:
            raise PlanConflict
        rows = [
            DeliveryRow(
                subscriber_id=item.subscriber_id,
                kind=item.kind,
                period_key=item.period_key,
                message_id=item.message_id,
                paper_ids=json.dumps(list(item.paper_ids)),
                message=item.raw,
                created_at=now,
                updated_at=now,
            )
            for item in outgoing
        ]
        session.add_all(rows)
        if also is not None:
            also(session)
        session.flush()
        return [row.id for row in rows if row.id is not None]


def due_ids(
    engine: Engine, *, now: datetime, subscriber_ids: Sequence[int] | None = None
) -> list[int]:
    """Ids of rows to send now (pending, and retries whose time has come), oldest first.

    Only ids: each message is read when its row is claimed, so a big outbox is never held
    in memory at once.
    """
    query = select(DeliveryRow.id).where(
        col(DeliveryRow.status).in_(CLAIMABLE),
        or_(col(DeliveryRow.next_attempt_at).is_(None), col(DeliveryRow.next_attempt_at) <= now),
    )
    if subscriber_ids is not None:
        query = query.where(col(DeliveryRow.subscriber_id).in_(subscriber_ids))
    with Session(engine) as session:
        return [row_id for row_id in session.exec(query.order_by(col(DeliveryRow.id))) if row_id]


@dataclass(frozen=True)
class Closing:
    """How an attempt ended: sent (detail = where) or retry, failed, unknown (detail = why)."""

    row_id: int
    status: str
    detail: str
    next_attempt_at: datetime | None = None


def claim(engine: Engine, row_id: int, *, now: datetime, by: str) -> Queued | None:
    """Take a due row for sending; None when another process already took it."""
    return settle(engine, None, claim_id=row_id, now=now, by=by)


def settle(
    engine: Engine, closing: Closing | None, *, claim_id: int | None, now: datetime, by: str
) -> Queued | None:
    """Close the attempt just made and claim the next row, in one write transaction.

    One transaction per email instead of two: a sender closes a row and takes the next one
    together, so it never holds more than the row it is sending.
    """
    with row_transaction(engine) as connection:
        if closing is not None:
            _close(connection, closing, now=now)
        return None if claim_id is None else _claim(connection, claim_id, now=now, by=by)


@contextmanager
def row_transaction(engine: Engine) -> Iterator[Connection]:
    """The transaction for claiming and closing rows: BEGIN IMMEDIATE on SQLite; on
    PostgreSQL a plain one, since claims lock their row (FOR UPDATE SKIP LOCKED) instead of
    serialising every writer. A Core connection: this runs once per email."""
    with engine.begin() as connection:
        if engine.dialect.name == "sqlite":
            connection.exec_driver_sql("BEGIN IMMEDIATE")
        yield connection


# Built once: these run once per email, and building a statement costs more than running it.
_DUE_ROW = (
    col(DeliveryRow.id) == bindparam("row_id"),
    col(DeliveryRow.status).in_(CLAIMABLE),
    or_(
        col(DeliveryRow.next_attempt_at).is_(None),
        col(DeliveryRow.next_attempt_at) <= bindparam("now", type_=UtcDateTime),
    ),
)
_LOCK_DUE_ROW = select(DeliveryRow.id).where(*_DUE_ROW).with_for_update(skip_locked=True)
_CLAIM = (
    update(DeliveryRow)
    .where(*_DUE_ROW)
    .values(
        status="sending",
        updated_at=bindparam("now", type_=UtcDateTime),
        claimed_by=bindparam("by"),
        claimed_at=bindparam("now", type_=UtcDateTime),
        attempts=DeliveryRow.attempts + 1,
    )
    .returning(
        col(DeliveryRow.subscriber_id),
        col(DeliveryRow.message),
        col(DeliveryRow.paper_ids),
        col(DeliveryRow.attempts),
    )
)
_CLOSE = (
    update(DeliveryRow)
    .where(col(DeliveryRow.id) == bindparam("row_id"))
    .values(
        status=bindparam("status"),
        updated_at=bindparam("now", type_=UtcDateTime),
        next_attempt_at=bindparam("next_attempt_at", type_=UtcDateTime),
        last_error=bindparam("last_error"),
        sent_at=bindparam("sent_at", type_=UtcDateTime),
        delivered_to=bindparam("delivered_to"),
    )
    .returning(col(DeliveryRow.subscriber_id), col(DeliveryRow.paper_ids))
)
_RECORD_SENT = {
    "sqlite": sqlite_insert(SentPaperRow).on_conflict_do_nothing(),
    "postgresql": postgresql_insert(SentPaperRow).on_conflict_do_nothing(),
}


def _claim(connection: Connection, row_id: int, *, now: datetime, by: str) -> Queued | None:
    params = {"row_id": row_id, "now": now, "by": by}
    # On PostgreSQL, lock the row or skip it if another transaction is claiming it right
    # now; the conditional UPDATE then re-checks its state under the lock.
    if connection.dialect.name == "postgresql" and (
        connection.execute(_LOCK_DUE_ROW, params).first() is None
    ):
        return None
    claimed = connection.execute(_CLAIM, params).first()
    if claimed is None:
        return None
    subscriber_id, message, paper_ids, attempts = claimed
    return Queued(
        id=row_id,
        subscriber_id=subscriber_id,
        outbound=Outbound.of(message),
        paper_count=len(json.loads(paper_ids)),
        attempts=attempts - 1,  # attempts before this one
    )


def _close(connection: Connection, closing: Closing, *, now: datetime) -> None:
    """Write how an attempt ended; a sent row records its papers as sent in the same step."""
    assert closing.status in ("sent", "retry", "failed", "unknown")
    sent = closing.status == "sent"
    row = connection.execute(
        _CLOSE,
        {
            "row_id": closing.row_id,
            "status": closing.status,
            "now": now,
            "next_attempt_at": closing.next_attempt_at,
            "last_error": None if sent else closing.detail,
            "sent_at": now if sent else None,
            "delivered_to": closing.detail if sent else None,
        },
    ).first()
    assert row is not None
    if sent and (paper_ids := json.loads(row.paper_ids)):
        papers = [
            {
                "subscriber_id": row.subscriber_id,
                "paper_id": pid,
                "delivery_id": closing.row_id,
                "sent_at": now,
            }
            for pid in paper_ids
        ]
        # executemany with one cached statement; a multi-row VALUES recompiles per size.
        connection.execute(_RECORD_SENT[connection.dialect.name], papers)


def mark_sent(engine: Engine, row_id: int, *, where: str, now: datetime) -> None:
    """Close the row as sent and record its papers as sent, in the same transaction."""
    settle(engine, Closing(row_id, "sent", where), claim_id=None, now=now, by="")


def unclaim(engine: Engine, row_id: int, *, now: datetime) -> None:
    """Give a claimed row back untouched, as if never attempted (the server was unreachable)."""
    with row_transaction(engine) as connection:
        connection.execute(
            update(DeliveryRow)
            .where(col(DeliveryRow.id) == row_id, col(DeliveryRow.status) == "sending")
            .values(
                status="pending",
                updated_at=now,
                attempts=DeliveryRow.attempts - 1,
                claimed_by=None,
                claimed_at=None,
            )
        )


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


def counts_by_status(engine: Engine) -> dict[str, int]:
    """How many delivery rows are in each state."""
    with Session(engine) as session:
        rows = session.exec(
            select(DeliveryRow.status, func.count()).group_by(col(DeliveryRow.status))
        ).all()
    return dict(rows)


def problem_rows(engine: Engine) -> list[DeliveryRow]:
    """Rows needing a person's attention or waiting to retry: unknown, failed, retry."""
    with Session(engine) as session:
        query = select(DeliveryRow).where(
            col(DeliveryRow.status).in_(("unknown", "failed", "retry"))
        )
        return list(session.exec(query.order_by(col(DeliveryRow.id))))
