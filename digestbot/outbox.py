"""Outbox stage: delivery rows committed before sending, claimed one at a time, closed once.

States: pending -> sending -> sent | retry (next_attempt_at) | failed | unknown.
A row is claimed with a conditional UPDATE, so two processes never send the same row; on
PostgreSQL the same UPDATE … WHERE status IN (…) is just as atomic. A row left in `sending`
by a dead process becomes `unknown`: the server may or may not have it, so it is resent only
on request (`send-now --resend-unknown`), with its original Message-ID.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine, func, or_, update
from sqlalchemy.dialects.postgresql import insert as postgresql_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import Session, col, select

from digestbot.db import DeliveryRow, SentPaperRow, write_session
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
    also: Callable[[Session], None] | None = None,
) -> None:
    """Commit one pending row per email in one write transaction.

    With `token` (from state_token before planning), raise PlanConflict if anything was
    enqueued or sent since, so the caller plans again instead of sending a paper twice.
    `also` adds writes that must commit or fail with these rows (the period ledger).
    """
    with write_session(engine) as session:
        if token is not None:
            last_row = session.exec(select(func.max(DeliveryRow.id))).one() or 0
            sent = session.exec(select(func.count()).select_from(SentPaperRow)).one()
            if (last_row, sent) != token:
                raise PlanConflict
        for item in outgoing:
            session.add(
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
            )
        if also is not None:
            also(session)


def due(
    engine: Engine, *, now: datetime, subscriber_ids: Sequence[int] | None = None
) -> list[Queued]:
    """Rows to send now: pending ones, and retries whose time has come; oldest first."""
    with Session(engine) as session:
        query = select(DeliveryRow).where(
            col(DeliveryRow.status).in_(CLAIMABLE),
            or_(
                col(DeliveryRow.next_attempt_at).is_(None), col(DeliveryRow.next_attempt_at) <= now
            ),
        )
        if subscriber_ids is not None:
            query = query.where(col(DeliveryRow.subscriber_id).in_(subscriber_ids))
        rows = session.exec(query.order_by(col(DeliveryRow.id))).all()
        return [
            Queued(
                id=row.id or 0,
                subscriber_id=row.subscriber_id,
                outbound=Outbound.of(row.message),
                paper_count=len(json.loads(row.paper_ids)),
                attempts=row.attempts,
            )
            for row in rows
        ]


def claim(engine: Engine, row_id: int, *, now: datetime, by: str) -> bool:
    """Take a due row for sending; False when another process already took it."""
    with write_session(engine) as session:
        result = session.exec(
            update(DeliveryRow)
            .where(
                col(DeliveryRow.id) == row_id,
                col(DeliveryRow.status).in_(CLAIMABLE),
                or_(
                    col(DeliveryRow.next_attempt_at).is_(None),
                    col(DeliveryRow.next_attempt_at) <= now,
                ),
            )
            .values(
                status="sending",
                updated_at=now,
                claimed_by=by,
                claimed_at=now,
                attempts=DeliveryRow.attempts + 1,
            )
        )
        return bool(result.rowcount)


def mark_sent(engine: Engine, row_id: int, *, where: str, now: datetime) -> None:
    """Close the row as sent and record its papers as sent, in the same transaction."""
    with write_session(engine) as session:
        row = session.get(DeliveryRow, row_id)
        assert row is not None
        row.status, row.sent_at, row.updated_at = "sent", now, now
        row.delivered_to, row.last_error, row.next_attempt_at = where, None, None
        session.add(row)
        values = [
            {
                "subscriber_id": row.subscriber_id,
                "paper_id": pid,
                "delivery_id": row_id,
                "sent_at": now,
            }
            for pid in json.loads(row.paper_ids)
        ]
        if values:
            # executemany with one cached statement; a multi-row VALUES recompiles per size.
            session.connection().execute(_insert_ignoring_duplicates(engine), values)


def _insert_ignoring_duplicates(engine: Engine) -> Any:
    """INSERT … ON CONFLICT DO NOTHING for sent papers, on SQLite or PostgreSQL."""
    if engine.dialect.name == "postgresql":
        return postgresql_insert(SentPaperRow).on_conflict_do_nothing()
    return sqlite_insert(SentPaperRow).on_conflict_do_nothing()


def close(
    engine: Engine,
    row_id: int,
    *,
    status: str,
    error: str,
    now: datetime,
    next_attempt_at: datetime | None = None,
) -> None:
    """Close a failed attempt as `retry` (with its next time), `failed` or `unknown`."""
    assert status in ("retry", "failed", "unknown")
    with write_session(engine) as session:
        row = session.get(DeliveryRow, row_id)
        assert row is not None
        row.status, row.last_error, row.updated_at = status, error, now
        row.next_attempt_at = next_attempt_at
        session.add(row)


def unclaim(engine: Engine, row_id: int, *, now: datetime) -> None:
    """Give a claimed row back untouched, as if never attempted (the server was unreachable)."""
    with write_session(engine) as session:
        session.exec(
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
