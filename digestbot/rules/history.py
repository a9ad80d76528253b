"""Rules stage, storage: what each subscriber already has (papers sent or on their way, when
their last digest was decided), read from the outbox and the period ledger.

Each read goes through an index to the rows it needs, never over the whole history: these
run on every scheduler tick that decides digests, and the history grows every day.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from digestbot.store.tables import (
    OPEN,
    DeliveryRow,
    PaperRow,
    PeriodRow,
    SentPaperRow,
    SubscriberRow,
)

Span = tuple[int, int] | None  # subscriber ids first..last of a worker's slice; None for all


def last_digests(engine: Engine, span: Span = None) -> dict[int, datetime]:
    """Per active subscriber, when their last digest was decided (a failed one does not
    count, so its papers come again)."""
    return _latest_per_active_subscriber(engine, DeliveryRow.created_at, *_THEIR_DIGESTS, span=span)


def left_out_of_last_digests(engine: Engine, span: Span = None) -> dict[int, list[str]]:
    """Per active subscriber whose last digest reached them, the matching papers it had no
    room for. While that digest is still on its way nothing is carried, so a reader never
    gets the rest before the first part; a failed digest does not count (its window reopens
    to before it)."""
    last = _latest_per_active_subscriber(
        engine, DeliveryRow.id, *_THEIR_DIGESTS, order_by=DeliveryRow.created_at, span=span
    )
    if not last:
        return {}
    query = select(DeliveryRow.subscriber_id, DeliveryRow.left_out).where(
        col(DeliveryRow.id).in_(list(last.values())), col(DeliveryRow.status) == "sent"
    )
    with Session(engine) as session:
        return {sub_id: list(ids) for sub_id, ids in session.exec(query) if ids}


_THEIR_DIGESTS = (
    col(DeliveryRow.subscriber_id) == SubscriberRow.id,
    col(DeliveryRow.kind) == "digest",
    # Never delivered: a failed digest, or one cancelled when its reader left (should they
    # come back, its papers are still theirs to get).
    col(DeliveryRow.status).not_in(("failed", "cancelled")),
)


def last_decided(engine: Engine, span: Span = None) -> dict[int, datetime]:
    """When each active subscriber's latest scheduled period was decided, empty ones too."""
    return _latest_per_active_subscriber(
        engine, PeriodRow.decided_at, col(PeriodRow.subscriber_id) == SubscriberRow.id, span=span
    )


def _latest_per_active_subscriber(
    engine: Engine, column: Any, *where: Any, order_by: Any = None, span: Span = None
) -> dict[int, Any]:
    """Per active subscriber, `column` of the newest (by `order_by`, else by `column`) of the
    rows `where` picks for them: one index seek each, where an aggregate over the table would
    read every row ever written."""
    latest = (
        select(column)
        .where(*where)
        .order_by(col(column if order_by is None else order_by).desc())
        .limit(1)
        .correlate(SubscriberRow)
        .scalar_subquery()
    )
    query = select(SubscriberRow.id, latest).where(col(SubscriberRow.active))
    if span is not None:
        query = query.where(col(SubscriberRow.id).between(*span))
    with Session(engine) as session:
        found = session.exec(query)
        return {sub_id: when for sub_id, when in found if sub_id is not None and when is not None}


def taken_since(engine: Engine, since: datetime | None, span: Span = None) -> dict[int, set[str]]:
    """Per subscriber, the papers first seen after `since` (all, when None) that were sent
    to them or are on their way: what a digest over those papers must leave out.

    The emails on their way are read before the papers sent: an email that is sent in
    between is then seen in one or the other, never in neither. Only the sent papers
    recorded after the lowest sent mark of those papers are read (none can be earlier, see
    PaperRow.sent_mark). A failed email does not count, so its papers stay eligible.
    """
    newer = select(PaperRow.id, PaperRow.sent_mark)
    if since is not None:
        newer = newer.where(col(PaperRow.first_seen) > since)
    taken: dict[int, set[str]] = {}
    on_their_way = select(DeliveryRow.subscriber_id, DeliveryRow.paper_ids).where(
        col(DeliveryRow.status).in_(OPEN)
    )
    sent = select(SentPaperRow.subscriber_id, SentPaperRow.paper_id)
    if span is not None:
        on_their_way = on_their_way.where(col(DeliveryRow.subscriber_id).between(*span))
        sent = sent.where(col(SentPaperRow.subscriber_id).between(*span))
    with Session(engine) as session:
        for sub_id, paper_ids in session.exec(on_their_way):
            taken.setdefault(sub_id, set()).update(paper_ids)
        marks = dict(session.exec(newer).all())
        if marks:
            after = col(SentPaperRow.id) > min(marks.values())
            for sub_id, paper_id in session.exec(sent.where(after)):
                if paper_id in marks:
                    taken.setdefault(sub_id, set()).add(paper_id)
    return taken


def alerts_since(engine: Engine, starts: Mapping[int, datetime]) -> dict[int, int]:
    """Alert emails queued per subscriber since their start time (failed ones don't count)."""
    if not starts:
        return {}
    with Session(engine) as session:
        rows = session.exec(
            select(DeliveryRow.subscriber_id, DeliveryRow.created_at).where(
                col(DeliveryRow.subscriber_id).in_(list(starts)),
                DeliveryRow.kind == "alert",
                DeliveryRow.status != "failed",
                col(DeliveryRow.created_at) >= min(starts.values()),
            )
        ).all()
    counts: dict[int, int] = {}
    for sub_id, created in rows:
        if created >= starts[sub_id]:
            counts[sub_id] = counts.get(sub_id, 0) + 1
    return counts
