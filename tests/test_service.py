"""Tests for the pipeline end to end: listing file to SMTP inbox, with real SQLite."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from conftest import LISTING_000, SmtpServer, free_port, smtp_at
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot import service
from digestbot.delivery import outbox
from digestbot.delivery.transport import TransportUnavailable
from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, SentPaperRow

SUBSCRIPTIONS = """\
subscribers:
  - email: alice@example.org
    name: Alice
    max_papers: 50  # room for every transformer paper of the listing: none carried over
    rules:
      - name: Transformers
        any: [transformer]
  - email: bob@example.org
    rules:
      - any: [diffusion]
"""


def subscribe(engine: Engine, now: datetime, text: str = SUBSCRIPTIONS) -> None:
    sync_subscriptions(engine, parse_subscriptions(text, source="s.yaml"), now=now)


def sent_rows(engine: Engine) -> list[SentPaperRow]:
    with Session(engine) as session:
        return list(session.exec(select(SentPaperRow)))


async def test_a_listing_file_reaches_the_smtp_inbox(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """Ingest, sync, send: each subscriber gets one digest with their matching papers."""
    ingest_path(engine, LISTING_000, now=clock)
    subscribe(engine, clock)
    outcomes, _ = await service.send_now(engine, smtp_settings, now=clock)
    assert [(o.email, o.status) for o in outcomes] == [
        ("alice@example.org", "sent"),
        ("bob@example.org", "sent"),
    ]
    messages = {str(m["To"].addresses[0].addr_spec): m for m in smtp_server.inbox.messages}
    assert set(messages) == {"alice@example.org", "bob@example.org"}
    alice_text = messages["alice@example.org"].get_body(("plain",)).get_content()
    assert "Informer: Beyond Efficient Transformer" in alice_text
    assert len(sent_rows(engine)) == sum(o.papers for o in outcomes)


async def test_a_second_send_right_after_sends_nothing(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """Papers already sent are not sent again, even with the listing ingested again."""
    ingest_path(engine, LISTING_000, now=clock)
    subscribe(engine, clock)
    await service.send_now(engine, smtp_settings, now=clock)
    later = clock + timedelta(minutes=5)
    ingest_path(engine, LISTING_000, now=later)
    outcomes, _ = await service.send_now(engine, smtp_settings, now=later)
    assert {o.status for o in outcomes} == {"nothing new"}
    assert len(smtp_server.inbox.envelopes) == 2


async def test_a_subscriber_added_after_the_ingest_gets_todays_papers(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A newcomer's first digest looks back a day, so a late sync still gets the listing."""
    ingest_path(engine, LISTING_000, now=clock)
    later = clock + timedelta(hours=6)
    subscribe(engine, later)
    (alice, _bob) = service.plan_digests(engine, settings, now=later)
    assert len(alice.items) > 0
    too_late = clock + timedelta(hours=25)
    (alice_late, _) = service.plan_digests(engine, settings, now=too_late)
    assert alice_late.items == ()


async def test_only_papers_first_seen_since_the_last_digest_are_sent(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A paper ingested after a digest goes in the next one; nothing else repeats."""
    ingest_path(engine, LISTING_000, now=clock)
    subscribe(engine, clock)
    await service.send_now(engine, settings, now=clock)
    new_listing = settings.outbox_dir.parent / "new.txt"
    new_listing.write_text(
        "Daily Papers\n\nNov 25\n\nA Transformer for Tide Tables\n\nWe forecast tides.\n\n"
        "  • 2 authors\n·\nNov 25\n",
        encoding="utf-8",
    )
    later = clock + timedelta(days=1)
    ingest_path(engine, new_listing, now=later)
    (alice, bob) = service.plan_digests(engine, settings, now=later)
    assert [i.paper.title for i in alice.items] == ["A Transformer for Tide Tables"]
    assert bob.items == ()


async def test_an_unreachable_server_leaves_every_row_pending_and_nothing_sent(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Connection refused: the error surfaces, rows stay pending, no paper counts as sent."""
    closed = smtp_at(settings, free_port())
    ingest_path(engine, LISTING_000, now=clock)
    subscribe(engine, clock)
    with pytest.raises(TransportUnavailable):
        await service.send_now(engine, closed, now=clock)
    assert outbox.counts_by_status(engine) == {"pending": 2}
    assert sent_rows(engine) == []
    with Session(engine) as session:
        assert {row.attempts for row in session.exec(select(DeliveryRow))} == {0}


async def test_pending_rows_go_out_on_the_next_run_without_a_duplicate_digest(
    engine: Engine,
    settings: Settings,
    smtp_settings: Settings,
    smtp_server: SmtpServer,
    clock: datetime,
) -> None:
    """After an outage the queued digests are sent as they were; no second copy is built."""
    closed = smtp_at(settings, free_port())
    ingest_path(engine, LISTING_000, now=clock)
    subscribe(engine, clock)
    with pytest.raises(TransportUnavailable):
        await service.send_now(engine, closed, now=clock)
    later = clock + timedelta(minutes=10)
    outcomes, _ = await service.send_now(engine, smtp_settings, now=later)
    assert {o.status for o in outcomes} == {"sent"}
    assert len(smtp_server.inbox.envelopes) == 2
    assert outbox.counts_by_status(engine) == {"sent": 2}


async def test_changing_rules_never_resends_a_paper(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """After a rule change, papers already sent stay sent, even if the new rule matches them."""
    ingest_path(engine, LISTING_000, now=clock)
    subscribe(engine, clock)
    await service.send_now(engine, settings, now=clock)
    wider = SUBSCRIPTIONS.replace("any: [transformer]", "any: [transformer, attention]")
    subscribe(engine, clock + timedelta(minutes=1), wider)
    ingest_path(engine, LISTING_000, now=clock + timedelta(minutes=2))
    (alice, _bob) = service.plan_digests(engine, settings, now=clock + timedelta(minutes=3))
    assert alice.items == ()
