"""Schedule stage, one slice of shared work: its subscribers' digests (or alerts) matched,
rendered and queued in one transaction with their period ledger entries (PostgreSQL).

The transaction first locks the slice's subscriber rows, so no other process queues an email
for them between this slice reading what they already have and committing what it adds;
slices of other subscribers never wait on it. It commits only while the slice is still this
worker's (tasks.finish), and the ledger's and outbox's unique keys stop a second copy of any
period anyway.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from digestbot.delivery import outbox
from digestbot.delivery.pipeline import render_chunk
from digestbot.errors import DigestbotError
from digestbot.models import Digest
from digestbot.rules.plan import RoundPapers, digests_for
from digestbot.rules.subscribers import active_subscribers
from digestbot.schedule import ledger, runs, tasks
from digestbot.settings import Settings
from digestbot.store.engine import sql

Clock = Callable[[], datetime]

_LOCK_SUBSCRIBERS = sql(
    "SELECT id FROM subscribers WHERE id BETWEEN :first AND :last ORDER BY id FOR UPDATE"
)


class SliceLost(DigestbotError):
    """The slice's lease ran out and another worker took it over: this attempt is dropped."""

    def __init__(self, task: tasks.Task) -> None:
        super().__init__(
            f"slice {task.first_id}-{task.last_id} of the {task.kind} round {task.round} "
            "was taken over by another worker",
            "raise DIGESTBOT_WORKER_LEASE if slices take longer than it",
        )


@dataclass(frozen=True)
class SliceDone:
    """What a slice queued: the ids of its rows to send, and how long it took."""

    ids: list[int]
    emails: int
    seconds: float
    waited: float  # of `seconds`, waiting for the subscribers' row locks


def work_slice(
    engine: Engine,
    settings: Settings,
    task: tasks.Task,
    *,
    by: str,
    shared: RoundPapers,
    clock: Clock,
) -> SliceDone:
    """Decide, render and queue the slice's emails in one transaction, and mark it done;
    SliceLost (and nothing written) if another worker holds it by then."""
    started = time.perf_counter()
    with engine.connect() as connection, connection.begin():
        params = {"first": task.first_id, "last": task.last_id}
        connection.execute(_LOCK_SUBSCRIBERS, params).all()
        waited = time.perf_counter() - started
        periods: Sequence[ledger.Decided] = ()
        if task.kind == "alert":
            digests = _alerts(engine, settings, task)
        else:
            digests, periods = _digests(engine, settings, task, shared)
        outgoing = render_chunk(settings, digests, clock())
        ids = outbox.insert_rows(connection, outgoing, now=task.at)
        ledger.insert_periods(connection, periods, now=task.at)
        done = SliceDone(
            ids=[i for i, o in zip(ids, outgoing, strict=True) if o.problem is None],
            emails=len(outgoing),
            seconds=time.perf_counter() - started,
            waited=waited,
        )
        finished = tasks.finish(
            connection,
            task,
            by=by,
            now=clock(),
            emails=done.emails,
            seconds=done.seconds,
            waited=done.waited,
        )
        if not finished:
            raise SliceLost(task)  # leaving the block rolls the transaction back
    return done


def _digests(
    engine: Engine, settings: Settings, task: tasks.Task, shared: RoundPapers
) -> tuple[list[Digest], Sequence[ledger.Decided]]:
    """The slice's due digest periods not decided yet: their digests to send (empty ones
    only for those who asked), and every such period for the ledger."""
    subscribers = active_subscribers(engine, span=task.span)
    latest = runs.latest_periods(subscribers, task.at)
    decided = ledger.decided_keys(engine, {period.key for _, period in latest}, task.span)
    due = [(sub, period) for sub, period in latest if (sub.id, period.key) not in decided]
    if not due:
        return [], []
    keys = {sub.id: period.key for sub, period in due}
    digests = list(
        digests_for(
            engine,
            settings,
            [sub for sub, _ in due],
            now=task.at,
            period_keys=keys,
            span=task.span,
            shared=shared,
        )
    )
    periods = [
        ledger.Decided(sub.id, period.key, period.due_at, len(digest.items))
        for (sub, period), digest in zip(due, digests, strict=True)
    ]
    wanted = [d for d in digests if d.items or d.problem or d.subscriber.send_empty]
    return wanted, periods


def _alerts(engine: Engine, settings: Settings, task: tasks.Task) -> list[Digest]:
    """The slice's alerts on the papers first seen by the ingest that made the round."""
    since = task.at - runs.ALERT_WINDOW
    return runs.plan_alerts(engine, settings, since=since, now=task.at, span=task.span)
