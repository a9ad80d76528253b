"""Tests for what readers' links do to the store: unsubscribes and votes (real SQLite)."""

from __future__ import annotations

from datetime import datetime

import pytest
from conftest import SmtpServer, free_port, smtp_at
from helpers import prepare, rows
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot import service
from digestbot.delivery.transport import TransportUnavailable
from digestbot.errors import ConfigError
from digestbot.rules import readers
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings
from digestbot.store.tables import PaperRow


async def test_unsubscribing_cancels_queued_emails_and_stops_mail_for_good(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A reader's queued digest is cancelled, never sent; asking again changes nothing."""
    prepare(engine, clock, count=2)
    with pytest.raises(TransportUnavailable):  # the server is down: the digests stay queued
        await service.send_now(engine, smtp_at(settings, free_port()), now=clock)
    assert {r.status for r in rows(engine)} == {"pending"}
    done = service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    assert done.new and done.cancelled == 1
    again = service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    assert not again.new and again.cancelled == 0
    assert sorted(r.status for r in rows(engine)) == ["cancelled", "pending"]
    assert [s.email for s in active_subscribers(engine)] == ["reader1@example.org"]
    assert set(readers.suppressions(engine)) == {"reader0@example.org"}


async def test_a_cancelled_email_is_never_sent(
    engine: Engine, settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """After the reader left, the next send delivers the others' queued digests, not theirs."""
    prepare(engine, clock, count=2)
    with pytest.raises(TransportUnavailable):
        await service.send_now(engine, smtp_at(settings, free_port()), now=clock)
    service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    await service.send_now(engine, smtp_at(settings, smtp_server.port), now=clock)
    recipients = [e.rcpt_tos for e in smtp_server.inbox.envelopes]
    assert recipients == [["reader1@example.org"]]


def test_the_latest_vote_on_a_paper_wins(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Voting twice on one paper keeps one vote, the latest; unknown papers are refused."""
    prepare(engine, clock, count=1)
    (reader,) = active_subscribers(engine)
    paper = service.plan_digests(engine, settings, now=clock)[0].items[0].paper.id
    assert readers.record_vote(engine, reader.id, paper, "up", digest="daily:1", now=clock)
    assert readers.record_vote(engine, reader.id, paper, "down", digest="daily:2", now=clock)
    assert not readers.record_vote(engine, reader.id, "nope", "up", digest="daily:2", now=clock)
    (vote,) = readers.votes(engine)
    got = (vote.email, vote.paper_id, vote.vote, vote.digest)
    assert got == ("reader0@example.org", paper, "down", "daily:2")


def test_votes_by_subscriber_gives_each_readers_standing_votes(
    engine: Engine, clock: datetime
) -> None:
    """Each subscriber maps to their voted papers, each with its latest vote; a subscriber
    who never voted is absent."""
    prepare(engine, clock, count=3)
    first, second, _ = active_subscribers(engine)
    with Session(engine) as session:
        a, b = session.exec(select(PaperRow.id).order_by(PaperRow.id).limit(2)).all()
    readers.record_vote(engine, first.id, a, "down", digest="daily:1", now=clock)
    readers.record_vote(engine, first.id, a, "up", digest="daily:2", now=clock)
    readers.record_vote(engine, first.id, b, "down", digest="daily:2", now=clock)
    readers.record_vote(engine, second.id, b, "up", digest="daily:2", now=clock)
    assert readers.votes_by_subscriber(engine) == {
        first.id: {a: "up", b: "down"},
        second.id: {b: "up"},
    }


def test_a_resubscribed_reader_gets_mail_again(engine: Engine, clock: datetime) -> None:
    """Resubscribing takes the address off the list and reactivates its subscriber."""
    prepare(engine, clock, count=1)
    service.unsubscribe(engine, "reader0@example.org", now=clock, via="operator")
    assert active_subscribers(engine) == []
    assert service.resubscribe(engine, "reader0@example.org", now=clock)
    assert not service.resubscribe(engine, "reader0@example.org", now=clock)
    assert [s.email for s in active_subscribers(engine)] == ["reader0@example.org"]
    assert readers.suppressions(engine) == {}


async def test_a_reader_who_comes_back_gets_the_papers_of_their_cancelled_digest(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A digest cancelled because its reader left was never delivered: once resubscribed,
    its papers are theirs to get again."""
    prepare(engine, clock, count=1)
    (before,) = service.plan_digests(engine, settings, now=clock)
    with pytest.raises(TransportUnavailable):
        await service.send_now(engine, smtp_at(settings, free_port()), now=clock)
    service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    assert service.resubscribe(engine, "reader0@example.org", now=clock)
    (after,) = service.plan_digests(engine, settings, now=clock)
    assert [i.paper.id for i in after.items] == [i.paper.id for i in before.items]


def test_a_preview_for_a_reader_who_left_says_they_unsubscribed(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """preview (and send-now --to) of an unsubscribed address says so, pointing at
    resubscribe, not at the subscriptions file that still lists them."""
    prepare(engine, clock, count=1)
    service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    with pytest.raises(ConfigError, match=r"reader0@example\.org unsubscribed") as raised:
        service.preview(engine, settings, "reader0@example.org", now=clock)
    assert "resubscribe" in str(raised.value)
