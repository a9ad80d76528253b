"""Tests for queueing beside workers on PostgreSQL: an enqueue waits for a slice holding its
readers, then sees what that slice queued."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

from helpers import prepare, rows
from sqlalchemy import Engine

from digestbot import service
from digestbot.delivery import outbox
from digestbot.delivery.pipeline import render_chunk
from digestbot.settings import Settings
from digestbot.store.engine import sql

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LOCK = sql("SELECT id FROM subscribers WHERE id BETWEEN 1 AND 3 ORDER BY id FOR UPDATE")


def test_an_enqueue_planned_before_a_slice_committed_is_refused_as_a_conflict(
    pg_settings: Settings, pg_engine: Engine
) -> None:
    """send-now plans while a worker's slice holds the same readers uncommitted; its enqueue
    waits for the slice to commit and then refuses to queue the same papers again."""
    prepare(pg_engine, NOW - timedelta(hours=2), count=3)
    token = outbox.state_token(pg_engine)
    planned = render_chunk(pg_settings, service.plan_digests(pg_engine, pg_settings, now=NOW), NOW)
    outcome: list[str] = []

    def send_now() -> None:
        try:
            outbox.enqueue(pg_engine, planned, now=NOW, token=token)
            outcome.append("queued")
        except outbox.PlanConflict:
            outcome.append("conflict")

    with pg_engine.connect() as slice_, slice_.begin():
        slice_.execute(LOCK).all()  # what a worker's slice takes first (schedule.slices)
        outbox.insert_rows(slice_, planned, now=NOW)
        other = threading.Thread(target=send_now)
        other.start()
        time.sleep(1.0)
        assert outcome == []  # waiting for the slice's readers
    other.join(timeout=30)
    assert outcome == ["conflict"]
    assert len(rows(pg_engine)) == 3  # the slice's emails alone


def test_an_enqueue_of_other_readers_does_not_wait_for_a_slice(
    pg_settings: Settings, pg_engine: Engine
) -> None:
    """A slice holding readers 1-3 does not hold up an enqueue for reader 4."""
    prepare(pg_engine, NOW - timedelta(hours=2), count=4)
    digests = service.plan_digests(pg_engine, pg_settings, now=NOW)
    fourth = [d for d in digests if d.subscriber.id == 4]
    planned = render_chunk(pg_settings, fourth, NOW)
    with pg_engine.connect() as slice_, slice_.begin():
        slice_.execute(LOCK).all()
        started = time.monotonic()
        outbox.enqueue(pg_engine, planned, now=NOW, token=outbox.state_token(pg_engine))
        assert time.monotonic() - started < 5.0
    assert [r.subscriber_id for r in rows(pg_engine)] == [4]
