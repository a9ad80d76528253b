"""Tests for scheduled runs: due periods from the ledger, catch-up, empty digests and alerts."""

from __future__ import annotations

import email
import email.policy
from datetime import UTC, datetime, timedelta

import pytest
from conftest import LISTING_000, LISTINGS, SmtpServer, free_port
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from digestbot.delivery.send import deliver
from digestbot.delivery.transport import TransportUnavailable
from digestbot.ingest.load import ingest_path
from digestbot.ingest.papers import papers_seen_since
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.schedule import runs
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, MessageRow, PeriodRow, SentPaperRow

LISTING_001 = LISTINGS / "001_da432fa98501e883.txt"
DAY1 = datetime(2026, 11, 23, 6, 0, tzinfo=UTC)

SUBSCRIPTIONS = """\
defaults:
  send_at: "08:00"
subscribers:
  - email: alice@example.org
    timezone: America/New_York
    rules:
      - any: [transformer]
  - email: bob@example.org
    timezone: Europe/Berlin
    rules:
      - any: [diffusion]
"""

ALERTS = """\
subscribers:
  - email: carol@example.org
    send_at: "20:00"
    max_papers: 500
    rules:
      - name: Diffusion now
        any: [diffusion]
        mode: alert
      - name: Transformers later
        any: [transformer]
"""


def subscribe(engine: Engine, now: datetime, text: str = SUBSCRIPTIONS) -> None:
    sync_subscriptions(engine, parse_subscriptions(text, source="s.yaml"), now=now)


def digests(engine: Engine, kind: str = "digest") -> list[DeliveryRow]:
    with Session(engine) as session:
        query = select(DeliveryRow).where(DeliveryRow.kind == kind).order_by(col(DeliveryRow.id))
        return list(session.exec(query))


async def decide(engine: Engine, settings: Settings, *, now: datetime) -> runs.Decision:
    """Run the scheduler's due-period step (decide, queue, send) and return what it decided."""
    decision, _ = await runs.send_due(engine, settings, now=now)
    return decision


def alerts_at(engine: Engine, settings: Settings, now: datetime) -> int:
    """Queue the alerts the daemon would right after an ingest at `now`; how many."""
    return runs.enqueue_alerts(engine, settings, since=now - runs.ALERT_WINDOW, now=now)


def papers_of(row: DeliveryRow) -> set[str]:
    return set(row.paper_ids)


async def test_a_period_is_decided_once_at_the_subscribers_local_time(
    engine: Engine, settings: Settings
) -> None:
    """Bob (Berlin, 07:00 UTC) is due before Alice (New York, 13:00 UTC); repeats add nothing."""
    subscribe(engine, DAY1)
    ingest_path(engine, LISTING_000, now=DAY1)
    at_0705 = DAY1.replace(hour=7, minute=5)
    assert await decide(engine, settings, now=at_0705) == runs.Decision(1, 0)
    assert await decide(engine, settings, now=at_0705 + timedelta(minutes=30)) == (runs.Decision())
    assert await decide(engine, settings, now=DAY1.replace(hour=13, minute=1)) == (
        runs.Decision(1, 0)
    )
    assert [(r.subscriber_id, r.period_key) for r in digests(engine)] == [
        (2, "2026-11-23"),
        (1, "2026-11-23"),
    ]


async def test_a_day_of_downtime_gives_one_catch_up_digest(
    engine: Engine, settings: Settings
) -> None:
    """Two missed days later, one digest per subscriber carries everything new, once."""
    subscribe(engine, DAY1)
    ingest_path(engine, LISTING_000, now=DAY1)
    ingest_path(engine, LISTING_001, now=DAY1 + timedelta(days=1))
    later = DAY1 + timedelta(days=2, hours=10)
    assert await decide(engine, settings, now=later) == runs.Decision(2, 0)
    assert await decide(engine, settings, now=later + timedelta(minutes=1)) == (runs.Decision())
    rows = digests(engine)
    assert {r.period_key for r in rows} == {"2026-11-25"}
    assert all(len(papers_of(r)) > 0 for r in rows)


async def test_a_period_due_before_the_subscriber_joined_is_not_theirs(
    engine: Engine, settings: Settings
) -> None:
    """Subscribed at 10:00 UTC, Bob's first digest is tomorrow's 08:00 Berlin, not today's."""
    subscribe(engine, DAY1.replace(hour=10))
    ingest_path(engine, LISTING_000, now=DAY1.replace(hour=10))
    assert await decide(engine, settings, now=DAY1.replace(hour=11)) == (runs.Decision())
    assert await decide(engine, settings, now=DAY1.replace(hour=13, minute=1)) == (
        runs.Decision(1, 0)  # Alice: 08:00 in New York came after she joined
    )
    tomorrow = DAY1 + timedelta(days=1, hours=1, minutes=1)
    assert await decide(engine, settings, now=tomorrow) == runs.Decision(1, 0)
    assert [r.period_key for r in digests(engine)] == ["2026-11-23", "2026-11-24"]


async def test_an_empty_digest_is_sent_only_with_send_empty(
    engine: Engine, settings: Settings
) -> None:
    """Nothing matched: Alice gets no email, Carol (send_empty) gets one; both periods close."""
    text = SUBSCRIPTIONS.replace("      - any: [transformer]", "      - any: [zzzunmatched]")
    text += "  - email: carol@example.org\n    send_empty: true\n    rules:\n      - any: [zzz]\n"
    subscribe(engine, DAY1, text)
    ingest_path(engine, LISTING_000, now=DAY1)
    decision, report = await runs.send_due(engine, settings, now=DAY1.replace(hour=14))
    assert decision == runs.Decision(emails=2, empty=1)  # Bob's diffusion + Carol's empty
    assert report.count("sent") == 2
    with Session(engine) as session:
        periods = session.exec(select(PeriodRow.subscriber_id, PeriodRow.papers)).all()
    assert sorted(periods) == [(1, 0), (2, len(papers_of(digests(engine)[0]))), (3, 0)]


async def test_a_tick_of_many_chunks_records_each_period_once(
    engine: Engine, settings: Settings
) -> None:
    """Twenty emails go out in chunks; each period, the two empty ones too, is recorded once."""
    terms = ["zzzunmatched"] * 2 + ["transformer"] * 20
    people = "".join(
        f"  - email: r{n}@example.org\n    rules:\n      - any: [{term}]\n"
        for n, term in enumerate(terms)
    )
    subscribe(engine, DAY1, "subscribers:\n" + people)
    ingest_path(engine, LISTING_000, now=DAY1)
    decision, report = await runs.send_due(engine, settings, now=DAY1.replace(hour=9))
    assert decision == runs.Decision(emails=20, empty=2) and report.count("sent") == 20
    with Session(engine) as session:
        periods = session.exec(select(PeriodRow.subscriber_id, PeriodRow.papers)).all()
    assert sorted(sub_id for sub_id, _ in periods) == list(range(1, 23))
    assert sorted(papers for _, papers in periods)[:3] == [0, 0, len(papers_of(digests(engine)[0]))]


async def test_papers_arriving_after_an_empty_period_wait_for_the_next_one(
    engine: Engine, settings: Settings
) -> None:
    """Bob's 08:00 period found nothing; papers at 09:00 go out tomorrow, not at the next tick."""
    subscribe(
        engine,
        DAY1,
        SUBSCRIPTIONS.split("  - email: bob")[0]
        .replace("alice", "bob")
        .replace("America/New_York", "Europe/Berlin")
        .replace("transformer", "diffusion"),
    )
    assert (await decide(engine, settings, now=DAY1.replace(hour=7, minute=1))).empty == 1
    ingest_path(engine, LISTING_000, now=DAY1.replace(hour=8))
    assert await decide(engine, settings, now=DAY1.replace(hour=8, minute=30)) == (runs.Decision())
    decision = await decide(engine, settings, now=DAY1 + timedelta(days=1, hours=1))
    assert decision.emails == 1 and digests(engine)[0].period_key == "2026-11-24"
    assert len(papers_of(digests(engine)[0])) > 1


async def test_alert_rules_send_one_email_per_ingest_with_the_new_papers(
    engine: Engine, settings: Settings
) -> None:
    """Several diffusion papers in one ingest make one alert email with all of them."""
    subscribe(engine, DAY1, ALERTS)
    ingest_path(engine, LISTING_000, now=DAY1)
    assert alerts_at(engine, settings, DAY1) == 1
    (alert,) = digests(engine, "alert")
    assert len(papers_of(alert)) > 1
    with Session(engine) as session:
        message = session.exec(
            select(MessageRow.raw).where(MessageRow.delivery_id == alert.id)
        ).one()
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    assert b"diffusion" in message.lower() and "alert" in str(parsed["Subject"]).lower()
    assert alerts_at(engine, settings, DAY1) == 0


async def test_an_alerted_paper_is_not_repeated_in_the_digest(
    engine: Engine, settings: Settings
) -> None:
    """Carol's evening digest has her transformer papers but none of the alerted ones."""
    subscribe(engine, DAY1, ALERTS)
    ingest_path(engine, LISTING_000, now=DAY1)
    alerts_at(engine, settings, DAY1)
    await deliver(engine, settings, now=DAY1)
    evening = DAY1.replace(hour=20, minute=1)
    assert (await decide(engine, settings, now=evening)).emails == 1
    (alert,) = digests(engine, "alert")
    (digest,) = digests(engine, "digest")
    assert papers_of(digest) and not papers_of(digest) & papers_of(alert)
    with Session(engine) as session:
        sent = [row.paper_id for row in session.exec(select(SentPaperRow))]
    assert sorted(sent) == sorted(papers_of(alert) | papers_of(digest))


async def test_papers_seen_in_an_earlier_ingest_do_not_alert_again(
    engine: Engine, settings: Settings
) -> None:
    """Re-ingesting the same listing finds nothing new, so no alert."""
    subscribe(engine, DAY1, ALERTS)
    ingest_path(engine, LISTING_000, now=DAY1)
    later = DAY1 + timedelta(hours=2)
    result = ingest_path(engine, LISTING_000, now=later)
    assert result.new == 0
    assert alerts_at(engine, settings, later) == 0


async def test_alerts_stop_at_the_daily_cap_and_the_rest_wait_for_the_digest(
    engine: Engine, settings: Settings
) -> None:
    """With a cap of 1, the second ingest's diffusion papers go into the evening digest."""
    capped = settings.model_copy(update={"alert_daily_cap": 1})
    subscribe(engine, DAY1, ALERTS)
    ingest_path(engine, LISTING_000, now=DAY1)
    assert alerts_at(engine, capped, DAY1) == 1
    second = DAY1 + timedelta(hours=1)
    ingest_path(engine, LISTING_001, now=second)
    assert alerts_at(engine, capped, second) == 0
    await decide(engine, capped, now=DAY1.replace(hour=20, minute=1))
    (digest,) = digests(engine, "digest")
    (alert,) = digests(engine, "alert")
    diffusion_in_second = {
        p.id
        for p in papers_seen_since(engine, second - runs.ALERT_WINDOW)
        if "diffusion" in (p.title + p.abstract).lower()
    }
    assert diffusion_in_second and diffusion_in_second <= papers_of(digest)
    next_day = DAY1 + timedelta(days=1)
    ingest_path(engine, LISTINGS / "002_cd53a97556a768fd.txt", now=next_day)
    assert alerts_at(engine, capped, next_day) == 1
    assert alert.period_key.startswith("alert:")


async def test_an_outage_mid_decision_loses_no_period_and_doubles_none(
    engine: Engine, settings: Settings, smtp_settings: Settings, smtp_server: SmtpServer
) -> None:
    """With the server down, only committed chunks are decided (their rows stay pending); the
    next run decides the rest, and every reader gets exactly one digest."""
    people = "".join(
        f"  - email: r{n}@example.org\n    rules:\n      - any: [transformer]\n" for n in range(20)
    )
    subscribe(engine, DAY1, "subscribers:\n" + people)
    ingest_path(engine, LISTING_000, now=DAY1)
    down = smtp_settings.model_copy(update={"smtp_port": free_port()})
    at_nine = DAY1.replace(hour=9)
    with pytest.raises(TransportUnavailable):
        await runs.send_due(engine, down, now=at_nine)
    with Session(engine) as session:
        decided = {p.subscriber_id for p in session.exec(select(PeriodRow))}
    queued = {row.subscriber_id for row in digests(engine)}
    assert decided == queued and len(queued) >= 1  # the chunks committed before the failure
    assert {row.status for row in digests(engine)} == {"pending"}
    decision, report = await runs.send_due(engine, smtp_settings, now=at_nine)
    assert decision.emails == 20 - len(queued) and report.count("sent") == 20
    recipients = sorted(str(m["To"].addresses[0].addr_spec) for m in smtp_server.inbox.messages)
    assert recipients == sorted(f"r{n}@example.org" for n in range(20))
