"""Schedule stage: a worker in this process shares out a round of slices (PostgreSQL)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from conftest import SmtpServer, smtp_at
from helpers import prepare, rows
from sqlalchemy import Engine

from digestbot.schedule import tasks
from digestbot.schedule.worker import Worker
from digestbot.settings import Settings

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


async def test_a_worker_sends_one_digest_per_reader_of_a_round(
    pg_settings: Settings, pg_engine: Engine, smtp_server: SmtpServer
) -> None:
    """Every slice of a round is done and each reader gets one digest."""
    prepare(pg_engine, AT - timedelta(hours=2), count=30)
    settings = smtp_at(pg_settings, smtp_server.port, slice_size=7, worker_poll=0.1)
    assert tasks.start_digest_round(pg_engine, settings, now=AT) == 5
    worker = Worker(settings, pg_engine)
    running = asyncio.ensure_future(worker.run())
    for _ in range(200):
        await asyncio.sleep(0.1)
        if len(smtp_server.inbox.envelopes) >= 30 and tasks.counts(pg_engine) == {"done": 5}:
            break
    worker.halt.set()
    await running
    assert tasks.counts(pg_engine) == {"done": 5}
    sent = [r.subscriber_id for r in rows(pg_engine) if r.status == "sent"]
    assert sorted(sent) == sorted(set(sent)) and len(sent) == 30
