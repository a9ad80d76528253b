"""Tests for carrying the papers a digest had no room for into the next digests (real SQLite)."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest import LISTING_000, SmtpServer
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot import service
from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, SentPaperRow

ALICE = """\
subscribers:
  - email: alice@example.org
    max_papers: 2
    rules:
      - any: [transformer]
"""


def _setup(engine: Engine, now: datetime) -> None:
    ingest_path(engine, LISTING_000, now=now)
    spec = parse_subscriptions(ALICE, source="s.yaml")
    sync_subscriptions(engine, spec, now=now - timedelta(hours=1))


def _sent(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return [row.paper_id for row in session.exec(select(SentPaperRow))]


async def test_a_digest_records_the_papers_it_had_no_room_for(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """The queued row keeps the left-out papers; the next digest sends them, none twice."""
    _setup(engine, clock)
    (first,) = service.plan_digests(engine, smtp_settings, now=clock)
    assert len(first.items) == 2 and len(first.left_out) >= 2
    await service.send_now(engine, smtp_settings, now=clock)
    with Session(engine) as session:
        (row,) = session.exec(select(DeliveryRow))
    assert sorted(row.left_out) == sorted(first.left_out)
    later = clock + timedelta(hours=1)
    (second,) = service.plan_digests(engine, smtp_settings, now=later)
    assert {i.paper.id for i in second.items} <= set(first.left_out)
    assert len(second.items) == 2
    await service.send_now(engine, smtp_settings, now=later)
    assert len(_sent(engine)) == len(set(_sent(engine))) == 4


async def test_left_out_papers_older_than_carry_over_days_are_not_carried(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """Past DIGESTBOT_CARRY_OVER_DAYS after first seen, a left-out paper comes no more."""
    _setup(engine, clock)
    await service.send_now(engine, smtp_settings, now=clock)
    within = service.plan_digests(engine, smtp_settings, now=clock + timedelta(days=6))
    assert len(within[0].items) == 2
    past = service.plan_digests(engine, smtp_settings, now=clock + timedelta(days=8))
    assert past[0].items == () and past[0].left_out == ()


async def test_carry_over_days_0_carries_nothing(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """With carrying off, the next digest holds only papers new since the last one."""
    settings = smtp_settings.model_copy(update={"carry_over_days": 0})
    _setup(engine, clock)
    await service.send_now(engine, settings, now=clock)
    (after,) = service.plan_digests(engine, settings, now=clock + timedelta(hours=1))
    assert after.items == ()
