"""The outbox's queue on SQLite: what enqueue commits, and what it refuses."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from test_delivery import prepare, rows

from digestbot import outbox
from digestbot.mailer import Outbound
from digestbot.subscribers import active_subscribers


def outgoing(subscriber_id: int, period_key: str, message_id: str) -> outbox.Outgoing:
    message = Outbound(b"m", "digestbot@example.org", ("reader@example.org",))
    return outbox.Outgoing(subscriber_id, "digest", period_key, message_id, message, ("p1",))


def test_the_same_digest_cannot_be_queued_twice(engine: Engine, clock: datetime) -> None:
    """UNIQUE(subscriber, kind, period key) refuses a second row for the same digest, even
    under another Message-ID and without a plan token, and a refused batch commits nothing."""
    prepare(engine, clock, count=2)
    alice, bob = (s.id for s in active_subscribers(engine))
    day = "daily:2026-11-24"
    outbox.enqueue(engine, [outgoing(alice, day, "<a@x>")], now=clock)
    again = [outgoing(bob, day, "<b@x>"), outgoing(alice, day, "<c@x>")]
    with pytest.raises(IntegrityError):
        outbox.enqueue(engine, again, now=clock)
    assert [(r.subscriber_id, r.message_id) for r in rows(engine)] == [(alice, "<a@x>")]
