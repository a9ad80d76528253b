"""The outbox's queue on SQLite: what enqueue commits, and what it refuses."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime, timedelta

import pytest
from conftest import LISTINGS
from helpers import prepare, rows
from sqlalchemy import Engine, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from digestbot import service
from digestbot.delivery import claims, outbox
from digestbot.delivery.pipeline import enqueue_digests
from digestbot.delivery.send import deliver
from digestbot.delivery.transport import Outbound
from digestbot.ingest import papers
from digestbot.ingest.load import ingest_path
from digestbot.rules import history
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, MessageRow, PaperRow, SentPaperRow


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


async def test_what_planning_reads_of_the_history_is_only_the_papers_it_could_send(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """taken_since: per subscriber, the papers sent or queued among those first seen after
    `since`; a paper sent before then is not read, since no digest over newer papers holds it."""
    prepare(engine, clock, count=2)  # today's listing and two subscribers
    await service.send_now(engine, settings, now=clock)
    later = clock + timedelta(days=1)
    ingest_path(engine, LISTINGS / "001_da432fa98501e883.txt", now=later)
    digests = service.plan_digests(engine, settings, now=later)
    enqueue_digests(engine, settings, digests, now=later)  # queued, not yet sent
    since = later - timedelta(hours=1)
    newer = {p.id for p in papers.papers_seen_since(engine, since)}
    everything = history.taken_since(engine, None)
    assert any(ids - newer for ids in everything.values())  # older papers were sent too
    assert any(ids & newer for ids in everything.values())  # and newer ones are queued
    expected = {sub: ids & newer for sub, ids in everything.items() if ids & newer}
    assert history.taken_since(engine, since) == expected


async def test_every_record_of_a_paper_as_sent_comes_after_the_papers_sent_mark(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """What taken_since relies on: a paper's sent mark is the last sent_papers id when it was
    first stored, so each row recording it as sent has a higher id."""
    prepare(engine, clock, count=3)
    await service.send_now(engine, settings, now=clock)
    later = clock + timedelta(days=1)
    ingest_path(engine, LISTINGS / "001_da432fa98501e883.txt", now=later)
    await service.send_now(engine, settings, now=later)
    with Session(engine) as session:
        marks = dict(session.exec(select(PaperRow.id, PaperRow.sent_mark)).all())
        sent = session.exec(select(SentPaperRow.id, SentPaperRow.paper_id)).all()
    distinct = set(marks.values())
    assert len(distinct) == 2 and min(distinct) == 0  # the second listing came after sends
    assert sent and all(row_id > marks[paper_id] for row_id, paper_id in sent)


def test_times_written_by_the_per_email_sql_are_stored_as_sqlalchemy_stores_them(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A row enqueued, claimed and closed through the database's own SQL holds its times in
    the text SQLAlchemy writes and compares against (whole seconds keep their .000000)."""
    prepare(engine, clock, count=1)
    on_the_second = clock.replace(microsecond=0)
    (row_id,) = enqueue_digests(
        engine,
        settings,
        service.plan_digests(engine, settings, now=on_the_second),
        now=on_the_second,
    )
    claims.claim(engine, row_id, now=on_the_second, by="me")
    claims.mark_sent(engine, row_id, where="smtp://test", now=on_the_second)
    database = settings.database_url.removeprefix("sqlite:///")
    with closing(sqlite3.connect(database)) as conn:
        stored = conn.execute(
            "SELECT created_at, updated_at, claimed_at, sent_at FROM deliveries"
        ).fetchone()
        joined = conn.execute("SELECT created_at FROM subscribers").fetchone()[0]  # by Core
    expected = on_the_second.replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")
    assert set(stored) == {expected} and len(joined) == len(expected)


def stored_messages(engine: Engine) -> set[int]:
    with Session(engine) as session:
        return set(session.exec(select(MessageRow.delivery_id)).all())


def test_it_forgets_only_the_messages_of_rows_sent_or_failed_by_then(
    engine: Engine, clock: datetime
) -> None:
    """forget_messages drops the messages of sent and failed rows finished at or before
    `until`; later ones, and every row still to send (pending, retry, unknown), keep theirs."""
    prepare(engine, clock, count=1)
    (sub,) = (s.id for s in active_subscribers(engine))
    later = clock + timedelta(days=1)
    states = [("sent", clock), ("failed", clock), ("sent", later), ("failed", later)]
    states += [("pending", clock), ("retry", clock), ("unknown", clock)]
    keys = [f"daily:{n}" for n in range(len(states))]
    ids = outbox.enqueue(engine, [outgoing(sub, k, f"<{k}@x>") for k in keys], now=clock)
    with Session(engine) as session:
        for row_id, (status, when) in zip(ids, states, strict=True):
            session.exec(
                update(DeliveryRow)
                .where(col(DeliveryRow.id) == row_id)
                .values(status=status, updated_at=when)
            )
        session.commit()
    assert outbox.forget_messages(engine, until=clock) == 2
    assert stored_messages(engine) == set(ids[2:])
    assert outbox.forget_messages(engine, until=later) == 2
    assert stored_messages(engine) == set(ids[4:])
    assert [r.status for r in rows(engine)] == [status for status, _ in states]  # rows stay


async def test_a_batch_drops_the_messages_of_emails_finished_longer_ago_than_kept(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A batch that sends drops the messages of emails finished DIGESTBOT_KEEP_MESSAGES_DAYS
    or more before it (0: its own too); a batch with nothing to send leaves them."""
    prepare(engine, clock, count=2)
    await service.send_now(engine, settings, now=clock)
    first = {r.id for r in rows(engine)}
    assert len(first) == 2 and stored_messages(engine) == first
    await deliver(engine, settings, now=clock + timedelta(days=30))  # nothing due
    assert stored_messages(engine) == first

    later = clock + timedelta(days=14, seconds=10)  # its emails finished just after `clock`
    ingest_path(engine, LISTINGS / "001_da432fa98501e883.txt", now=later)
    await service.send_now(engine, settings, now=later)
    second = {r.id for r in rows(engine)} - first
    assert len(second) == 2 and stored_messages(engine) == second

    last = later + timedelta(days=1)
    ingest_path(engine, LISTINGS / "002_cd53a97556a768fd.txt", now=last)
    at_once = settings.model_copy(update={"keep_messages_days": 0})
    await service.send_now(engine, at_once, now=last)
    assert len(rows(engine)) == 6 and stored_messages(engine) == set()
