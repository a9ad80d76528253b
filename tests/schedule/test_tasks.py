"""Tests for the shared work queue on PostgreSQL: rounds of slices, claims that skip locked
rows, leases that run out, a finish only by the holder, attempts that give up."""

from __future__ import annotations

import asyncio
import threading
from datetime import UTC, datetime, timedelta

import pytest
from conftest import SmtpServer, smtp_at
from helpers import prepare, rows
from sqlalchemy import Engine, text

from digestbot.rules.plan import RoundPapers
from digestbot.schedule import slices, tasks
from digestbot.schedule.worker import Worker
from digestbot.settings import Settings

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
LEASE = timedelta(seconds=60)


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def readers(pg_engine: Engine) -> Engine:
    """30 readers known since before their 08:00 period, and papers for them."""
    prepare(pg_engine, AT - timedelta(hours=2), count=30)
    return pg_engine


def test_a_round_splits_the_readers_ids_into_slices_once(
    readers: Engine, pg_settings: Settings
) -> None:
    """A round of slices of 7 ids covers ids 1-30 in five slices; asking again adds none."""
    settings = pg_settings.model_copy(update={"slice_size": 7})
    assert tasks.start_digest_round(readers, settings, now=AT) == 5
    assert tasks.start_digest_round(readers, settings, now=AT + timedelta(minutes=5)) == 0
    with readers.connect() as connection:
        spans = connection.execute(text("SELECT first_id, last_id FROM work_tasks ORDER BY id"))
        assert [tuple(s) for s in spans] == [(1, 7), (8, 14), (15, 21), (22, 28), (29, 30)]


def test_no_round_is_made_before_any_period_falls_due(
    readers: Engine, pg_settings: Settings
) -> None:
    """Once the 08:00 period has its round, the next tick before tomorrow's adds nothing."""
    assert tasks.start_digest_round(readers, pg_settings, now=AT) == 1
    later = AT + timedelta(hours=10)
    assert tasks.start_digest_round(readers, pg_settings, now=later) == 0
    tomorrow = AT + timedelta(days=1)
    assert tasks.start_digest_round(readers, pg_settings, now=tomorrow) == 1


def test_concurrent_claims_never_take_the_same_slice(readers: Engine) -> None:
    """Four threads claim at once until none is left: each of 30 slices is taken once."""
    tasks.make_round(readers, "digest", at=AT, size=1, now=AT)
    taken: list[int] = []
    start = threading.Barrier(4)

    def claimer(n: int) -> None:
        start.wait()
        while (task := tasks.claim(readers, by=f"w{n}", now=now(), lease=LEASE)) is not None:
            taken.append(task.id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(taken) == sorted(set(taken)) and len(taken) == 30


def test_a_slice_whose_lease_ran_out_is_taken_over_and_its_first_holder_cannot_finish(
    readers: Engine, pg_settings: Settings
) -> None:
    """After the lease, another worker claims the slice; the first one's work is rolled
    back (SliceLost) and the second one's is what counts."""
    tasks.make_round(readers, "digest", at=AT, size=100, now=AT)
    first = tasks.claim(readers, by="first", now=now() - 2 * LEASE, lease=LEASE)
    assert first is not None
    second = tasks.claim(readers, by="second", now=now(), lease=LEASE)
    assert second is not None and second.id == first.id and second.attempts == 2
    shared = RoundPapers(AT)
    with pytest.raises(slices.SliceLost):
        slices.work_slice(readers, pg_settings, first, by="first", shared=shared, clock=now)
    assert rows(readers) == []
    done = slices.work_slice(readers, pg_settings, second, by="second", shared=shared, clock=now)
    assert done.emails == 30 and len(rows(readers)) == 30
    assert tasks.counts(readers) == {"done": 1}


def test_a_slice_done_again_queues_nothing_more(readers: Engine, pg_settings: Settings) -> None:
    """A second round over the same period finds every reader's period decided."""
    shared = RoundPapers(AT)
    for at in (AT, AT + timedelta(minutes=1)):
        tasks.make_round(readers, "digest", at=at, size=100, now=at)
        task = tasks.claim(readers, by="w", now=now(), lease=LEASE)
        assert task is not None
        slices.work_slice(readers, pg_settings, task, by="w", shared=shared, clock=now)
    assert len(rows(readers)) == 30


def test_a_slice_that_keeps_failing_is_left_failed_with_why(readers: Engine) -> None:
    """Each failed attempt gives the slice back; after MAX_ATTEMPTS it stays failed."""
    tasks.make_round(readers, "digest", at=AT, size=100, now=AT)
    for _ in range(tasks.MAX_ATTEMPTS):
        task = tasks.claim(readers, by="w", now=now(), lease=LEASE)
        assert task is not None
        tasks.give_back(readers, task, by="w", now=now(), error="boom")
    assert tasks.claim(readers, by="w", now=now(), lease=LEASE) is None
    (failed,) = tasks.failed_tasks(readers)
    assert failed.error == "boom" and failed.attempts == tasks.MAX_ATTEMPTS


async def test_a_worker_loads_a_rounds_papers_once_for_all_its_slices(
    readers: Engine, pg_settings: Settings, smtp_server: SmtpServer
) -> None:
    """Five slices of one round: one read and index of the papers; every reader gets one
    digest, and the worker's row counts its slices while it runs."""
    settings = smtp_at(pg_settings, smtp_server.port, slice_size=7, worker_poll=0.1)
    tasks.start_digest_round(readers, settings, now=AT)
    worker = Worker(settings, readers)
    running = asyncio.ensure_future(worker.run())
    for _ in range(300):
        await asyncio.sleep(0.1)
        if len(smtp_server.inbox.envelopes) >= 30 and tasks.counts(readers) == {"done": 5}:
            break
    (live,) = tasks.live_workers(readers, now=now(), within=timedelta(minutes=1))
    assert live.name == worker.name
    worker.halt.set()
    await running
    assert worker.rounds["digest"].loads == 1 and worker.slices == 5
    sent = sorted(r.subscriber_id for r in rows(readers) if r.status == "sent")
    assert sent == list(range(1, 31))
    assert tasks.live_workers(readers, now=now(), within=timedelta(minutes=1)) == []


def test_slices_finished_over_a_week_ago_and_silent_workers_are_pruned(readers: Engine) -> None:
    """Done and failed slices past KEEP_DONE go, a waiting one stays; so does a worker heard
    from lately, while one silent for a week goes."""
    tasks.make_round(readers, "digest", at=AT, size=10, now=AT)
    old = now() - tasks.KEEP_DONE - timedelta(days=1)
    with readers.begin() as connection:
        connection.execute(text("UPDATE work_tasks SET state = 'done' WHERE first_id = 1"))
        connection.execute(text("UPDATE work_tasks SET state = 'failed' WHERE first_id = 11"))
        connection.execute(text("UPDATE work_tasks SET finished_at = :t"), {"t": old})
    tasks.register(readers, "silent:1", now=old)
    tasks.register(readers, "live:2", now=now())
    assert tasks.prune(readers, now=now()) == 2
    assert tasks.counts(readers) == {"waiting": 1}
    names = [w.name for w in tasks.live_workers(readers, now=now(), within=tasks.KEEP_DONE * 2)]
    assert names == ["live:2"]
