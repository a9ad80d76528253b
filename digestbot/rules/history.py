"""Rules stage, storage: what each subscriber already has (papers sent or on their way, when
their last digest was decided), read from the outbox and the period ledger."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from digestbot.store.tables import OPEN, DeliveryRow, PaperRow, PeriodRow, SentPaperRow


def last_digests(engine: Engine) -> dict[int, datetime]:
    """Per subscriber, when their last digest was decided (a failed one does not count)."""
    with Session(engine) as session:
        last = session.exec(
            select(DeliveryRow.subscriber_id, func.max(DeliveryRow.created_at))
            .where(DeliveryRow.status != "failed", DeliveryRow.kind == "digest")
            .group_by(col(DeliveryRow.subscriber_id))
        ).all()
    return {sub_id: when for sub_id, when in last}


def taken_since(engine: Engine, since: datetime | None) -> dict[int, set[str]]:
    """Per subscriber, the papers first seen after `since` (all, when None) that were sent
    to them or are on their way: what a digest over those papers must leave out.

    Only the sent papers recorded after the lowest sent mark of those papers are read (none
    can be earlier, see db.PaperRow.sent_mark): every paper ever sent took 9 s and 2.9 GB
    for a month of digests to 10,000 subscribers (bench_history). A failed delivery does not
    count, so its papers stay eligible for the next digest.
    """
    newer = select(PaperRow.id, PaperRow.sent_mark)
    if since is not None:
        newer = newer.where(col(PaperRow.first_seen) > since)
    taken: dict[int, set[str]] = {}
    with Session(engine) as session:
        marks = dict(session.exec(newer).all())
        if marks:
            sent = select(SentPaperRow.subscriber_id, SentPaperRow.paper_id)
            after = col(SentPaperRow.id) > min(marks.values())
            for sub_id, paper_id in session.exec(sent.where(after)):
                if paper_id in marks:
                    taken.setdefault(sub_id, set()).add(paper_id)
        for row in session.exec(select(DeliveryRow).where(col(DeliveryRow.status).in_(OPEN))):
            taken.setdefault(row.subscriber_id, set()).update(row.paper_ids)
    return taken


def alerts_since(engine: Engine, starts: Mapping[int, datetime]) -> dict[int, int]:
    """Alert emails queued per subscriber since their start time (failed ones don't count)."""
    if not starts:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(DeliveryRow.subscriber_id, DeliveryRow.created_at).where(
                DeliveryRow.kind == "alert",
                DeliveryRow.status != "failed",
                col(DeliveryRow.created_at) >= min(starts.values()),
            )
        ).all()
    counts: dict[int, int] = {}
    for sub_id, created in rows:
        if sub_id in starts and created >= starts[sub_id]:
            counts[sub_id] = counts.get(sub_id, 0) + 1
    return counts


def last_decided(engine: Engine) -> dict[int, datetime]:
    """When each subscriber's latest scheduled period was decided, empty ones included."""
    with Session(engine) as session:
        rows = session.exec(
            select(PeriodRow.subscriber_id, func.max(PeriodRow.decided_at)).group_by(
                col(PeriodRow.subscriber_id)
            )
        ).all()
    return {sub_id: when for sub_id, when in rows}
