"""Digests stage (pure): decide which papers each subscriber gets this time."""

from __future__ import annotations

from collections.abc import Collection, Iterable
from datetime import datetime, timedelta

from digestbot.matching import match_paper, rank_key
from digestbot.models import Digest, DigestItem, Paper, Subscriber


def window_start(last_digest_at: datetime | None, now: datetime, first_hours: float) -> datetime:
    """Papers first seen after this moment are new to the subscriber.

    After a digest, that is when it was decided; a newcomer looks back `first_hours` so
    they get today's papers without being flooded with history.
    """
    if last_digest_at is not None:
        return last_digest_at
    return now - timedelta(hours=first_hours)


def build_digest(
    subscriber: Subscriber,
    papers: Iterable[Paper],
    *,
    since: datetime,
    already_sent: Collection[str],
    now: datetime,
    period_key: str,
) -> Digest:
    """The subscriber's digest: matched papers first seen after `since` and never sent to them,
    ranked best first and capped at their `max_papers`, whatever the papers' publication dates.
    """
    items = [
        DigestItem(paper, match)
        for paper in papers
        if paper.first_seen > since and paper.id not in already_sent
        if (match := match_paper(subscriber.rules, paper)) is not None
    ]
    items.sort(key=lambda item: rank_key(item.paper, item.match))
    kept = items[: subscriber.max_papers]
    return Digest(
        subscriber=subscriber,
        items=tuple(kept),
        generated_at=now,
        period_key=period_key,
        dropped=len(items) - len(kept),
    )
