"""Outbox stage: delivery rows committed before sending, claimed, and closed as sent or failed."""

from __future__ import annotations

import email
import email.policy
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from sqlalchemy import Engine, func, update
from sqlmodel import Session, col, select

from digestbot.db import DeliveryRow, SentPaperRow

OPEN = ("pending", "sending")


@dataclass(frozen=True)
class Outgoing:
    """A decided email: who gets it, which papers it carries, and the message itself."""

    subscriber_id: int
    kind: str
    period_key: str
    message: EmailMessage
    paper_ids: tuple[str, ...]


@dataclass(frozen=True)
class Queued:
    """A delivery row ready to be sent."""

    id: int
    subscriber_id: int
    message: EmailMessage
    paper_count: int


def decided_state(engine: Engine) -> tuple[dict[int, datetime], dict[int, set[str]]]:
    """Per subscriber: when their last digest was decided, and papers sent or on their way.

    A failed delivery does not count, so its papers stay eligible for the next digest.
    """
    with Session(engine) as session:
        last = session.exec(
            select(DeliveryRow.subscriber_id, func.max(DeliveryRow.created_at))
            .where(DeliveryRow.status != "failed")
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


def enqueue(engine: Engine, outgoing: Sequence[Outgoing], *, now: datetime) -> None:
    """Commit one pending row per email, all in one transaction."""
    with Session(engine) as session, session.begin():
        for item in outgoing:
            session.add(
                DeliveryRow(
                    subscriber_id=item.subscriber_id,
                    kind=item.kind,
                    period_key=item.period_key,
                    message_id=str(item.message["Message-ID"]),
                    paper_ids=json.dumps(list(item.paper_ids)),
                    message=item.message.as_bytes(),
                    created_at=now,
                    updated_at=now,
                )
            )


def pending(engine: Engine, subscriber_ids: Sequence[int] | None = None) -> list[Queued]:
    """Rows waiting to be sent, oldest first."""
    with Session(engine) as session:
        query = select(DeliveryRow).where(DeliveryRow.status == "pending")
        if subscriber_ids is not None:
            query = query.where(col(DeliveryRow.subscriber_id).in_(subscriber_ids))
        rows = session.exec(query.order_by(col(DeliveryRow.id))).all()
        return [
            Queued(
                id=row.id or 0,
                subscriber_id=row.subscriber_id,
                message=_parse(row.message),
                paper_count=len(json.loads(row.paper_ids)),
            )
            for row in rows
        ]


def _parse(raw: bytes) -> EmailMessage:
    message = email.message_from_bytes(raw, policy=email.policy.default)
    assert isinstance(message, EmailMessage)
    return message


def claim(engine: Engine, row_id: int, *, now: datetime) -> bool:
    """Take a pending row for sending; False when another process already took it."""
    with Session(engine) as session, session.begin():
        result = session.exec(
            update(DeliveryRow)
            .where(col(DeliveryRow.id) == row_id, col(DeliveryRow.status) == "pending")
            .values(status="sending", updated_at=now, attempts=DeliveryRow.attempts + 1)
        )
        return bool(result.rowcount)


def mark_sent(engine: Engine, row_id: int, *, where: str, now: datetime) -> None:
    """Close the row as sent and record its papers as sent, in the same transaction."""
    with Session(engine) as session, session.begin():
        row = session.get(DeliveryRow, row_id)
        assert row is not None
        row.status, row.sent_at, row.updated_at = "sent", now, now
        row.delivered_to, row.last_error = where, None
        session.add(row)
        ids = json.loads(row.paper_ids)
        already = set(
            session.exec(
                select(SentPaperRow.paper_id).where(
                    SentPaperRow.subscriber_id == row.subscriber_id,
                    col(SentPaperRow.paper_id).in_(ids),
                )
            )
        )
        for pid in ids:
            if pid not in already:
                session.add(
                    SentPaperRow(
                        subscriber_id=row.subscriber_id,
                        paper_id=pid,
                        delivery_id=row_id,
                        sent_at=now,
                    )
                )


def release(engine: Engine, row_id: int, *, error: str, permanent: bool, now: datetime) -> None:
    """Close a failed attempt: `failed` when permanent, otherwise back to `pending`."""
    with Session(engine) as session, session.begin():
        row = session.get(DeliveryRow, row_id)
        assert row is not None
        row.status = "failed" if permanent else "pending"
        row.last_error, row.updated_at = error, now
        session.add(row)


def unclaim(engine: Engine, row_id: int, *, now: datetime) -> None:
    """Give a claimed row back untouched, as if never attempted (the server was unreachable)."""
    with Session(engine) as session, session.begin():
        session.exec(
            update(DeliveryRow)
            .where(col(DeliveryRow.id) == row_id, col(DeliveryRow.status) == "sending")
            .values(status="pending", updated_at=now, attempts=DeliveryRow.attempts - 1)
        )


def counts_by_status(engine: Engine) -> dict[str, int]:
    """How many delivery rows are in each state."""
    with Session(engine) as session:
        rows = session.exec(
            select(DeliveryRow.status, func.count()).group_by(col(DeliveryRow.status))
        ).all()
    return dict(rows)
