"""The library behind the CLI: ingest, plan and send digests, each one call over the stages."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import select

from digestbot.delivery import outbox
from digestbot.delivery.claims import cancel_queued
from digestbot.delivery.pipeline import enqueue_in_chunks, render_chunk, start_render_server
from digestbot.delivery.send import Feed, Progress, Report, deliver_while
from digestbot.errors import ConfigError
from digestbot.models import Digest, Subscriber
from digestbot.rules import readers
from digestbot.rules.plan import digests_for
from digestbot.rules.subscribers import active_count, active_subscribers
from digestbot.settings import Settings
from digestbot.store.engine import write_session
from digestbot.store.lock import PlanningLock
from digestbot.store.tables import SubscriberRow
from digestbot.store.thread import DbThread


@dataclass(frozen=True)
class Chosen:
    """A paper newly decided for a subscriber, and why: what a report says of a digest."""

    id: str
    title: str
    score: float
    matched: tuple[str, ...]
    rules: tuple[str, ...] = ()
    similar: tuple[str, ...] = ()  # `like: <seed> (0.41)` of the `like:` rules that chose it


@dataclass(frozen=True)
class Outcome:
    """What happened to one subscriber's digest in a send: how many papers went out, the
    worst status of their emails, and where they went (or why not). With `details`, the
    papers newly decided for them and how many matched beyond their max_papers."""

    email: str
    papers: int
    status: str  # sent | retry | unknown | failed | nothing new
    where: str
    subscriber_id: int = 0
    chosen: tuple[Chosen, ...] = ()
    left_out: int = 0


Decided = tuple[Chosen, ...]  # a digest's papers, as a report lists them


def chosen(digest: Digest) -> tuple[Chosen, ...]:
    """The digest's papers as a report lists them."""
    return tuple(
        Chosen(
            item.paper.id,
            item.paper.title,
            item.match.score,
            item.match.terms,
            item.match.rules,
            item.match.similar,
        )
        for item in digest.items
    )


def plan_digests(
    engine: Engine, settings: Settings, *, now: datetime, emails: Sequence[str] = ()
) -> list[Digest]:
    """Each active subscriber's digest as it would go out now (nothing is written)."""
    return list(_planned(engine, settings, now=now, emails=emails)[1])


def _planned(
    engine: Engine, settings: Settings, *, now: datetime, emails: Sequence[str] = ()
) -> tuple[list[Subscriber], Iterator[Digest]]:
    """The active subscribers (all, or those of `emails`) and their digests, decided one at
    a time as they are taken; everything is read from the database before this returns."""
    subscribers = active_subscribers(engine, emails)
    missing = sorted(set(emails) - {s.email for s in subscribers})
    if missing:
        left = sorted(set(missing) & set(readers.suppressions(engine)))
        if left:
            raise ConfigError(
                f"{', '.join(left)} unsubscribed: no mail goes to them",
                "run `digestbot resubscribe EMAIL` only if they asked to come back",
            )
        raise ConfigError(
            f"not an active subscriber: {', '.join(missing)}",
            "check the address, or add it to the subscriptions file and run `subscriptions sync`",
        )
    keys = dict.fromkeys((s.id for s in subscribers), f"manual:{now.isoformat()}")
    return subscribers, digests_for(engine, settings, subscribers, now=now, period_keys=keys)


def queued(engine: Engine, subscribers: Sequence[Subscriber]) -> dict[int, list[outbox.Waiting]]:
    """Per subscriber id, their emails queued and not sent yet (pending, retry), oldest
    first: the next send tries them before anything newly decided."""
    found: dict[int, list[outbox.Waiting]] = {s.id: [] for s in subscribers}
    for row in outbox.waiting(engine, list(found)):
        found[row.subscriber_id].append(row)
    return found


@dataclass(frozen=True)
class Preview:
    """What `send-now --to ADDRESS` would send at a moment, byte for byte: the emails
    already queued for the subscriber (each with its message, None once dropped), then the
    newly decided digest (None when there is nothing new)."""

    queued: list[tuple[outbox.Waiting, bytes | None]]
    new: bytes | None


def preview(engine: Engine, settings: Settings, address: str, *, now: datetime) -> Preview:
    """The subscriber's queued emails and the digest `send-now --to ADDRESS` would queue at
    `now`. Nothing is sent or written."""
    (digest,) = plan_digests(engine, settings, now=now, emails=[address])
    waiting = queued(engine, [digest.subscriber])[digest.subscriber.id]
    stored = [(row, outbox.stored_message(engine, row.id)) for row in waiting]
    new = render_chunk(settings, [digest], now)[0].raw if digest.items else None
    return Preview(stored, new)


async def send_now(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    emails: Sequence[str] = (),
    progress: Progress | None = None,
    details: bool = False,
) -> tuple[list[Outcome], Report]:
    """Decide digests, then render and commit them chunk by chunk while the committed ones are
    being sent (and every older due row of the same subscribers); one Outcome per subscriber,
    with the papers decided for them if `details`."""
    decided: dict[int, Decided] | None = {} if details else None

    left_out: dict[int, int] = {}

    async def plan(feed: Feed, db: DbThread) -> list[Subscriber]:
        return await _plan_and_enqueue(engine, settings, now, emails, feed, db, left_out, decided)

    start_render_server(settings, len(emails) if emails else active_count(engine))

    planned, report = await deliver_while(engine, settings, plan, now=now, progress=progress)
    by_subscriber: dict[int, list[tuple[outbox.Queued, str, str]]] = {}
    for entry in report.results:
        by_subscriber.setdefault(entry[0].subscriber_id, []).append(entry)
    unsendable = dict(report.unsendable)
    outcomes = [
        Outcome(sub.email, 0, "failed", unsendable[sub.id])
        if sub.id in unsendable
        else replace(
            _outcome(sub.email, by_subscriber.get(sub.id, [])), left_out=left_out.get(sub.id, 0)
        )
        for sub in planned
    ]
    if decided is not None:
        outcomes = [
            _detailed(o, sub, decided.get(sub.id)) for o, sub in zip(outcomes, planned, strict=True)
        ]
    return outcomes, report


def _detailed(outcome: Outcome, subscriber: Subscriber, decided: Decided | None) -> Outcome:
    return replace(outcome, subscriber_id=subscriber.id, chosen=decided or ())


async def _plan_and_enqueue(
    engine: Engine,
    settings: Settings,
    now: datetime,
    emails: Sequence[str],
    feed: Feed,
    db: DbThread,
    left_out: dict[int, int],
    decided: dict[int, Decided] | None = None,
) -> list[Subscriber]:
    """Plan against a state token; plan again if another run committed first. Digests are
    decided as the pipeline takes them, so the first go out while the rest are decided;
    returns whom they were decided for, notes in `left_out` how many matching papers each
    digest had no room for (and fills `decided`, when given, with each one's papers)."""
    planned: dict[int, Subscriber] = {}

    def noted(digests: Iterator[Digest]) -> Iterator[Digest]:
        # Only the subscriber is kept, unless asked: holding every rendered-and-sent digest's
        # papers until the batch ends cost memory and made each GC pass longer.
        for digest in digests:
            planned.setdefault(digest.subscriber.id, digest.subscriber)
            left_out[digest.subscriber.id] = digest.dropped
            if decided is not None:
                decided[digest.subscriber.id] = chosen(digest)
            yield digest

    lock = PlanningLock(engine)
    await asyncio.to_thread(lock.acquire)  # not on the database thread: the senders use it
    try:
        for attempt in range(outbox.PLAN_ATTEMPTS):
            token = await db.run(outbox.state_token, engine)
            subscribers, digests = await db.run(_planned, engine, settings, now=now, emails=emails)
            if attempt == 0:  # older due rows of these subscribers go out with the new ones
                ids = [s.id for s in subscribers]
                feed.put(await db.run(outbox.due_ids, engine, now=now, subscriber_ids=ids))
            try:
                await enqueue_in_chunks(
                    engine, settings, noted(digests), now=now, token=token, feed=feed, db=db
                )
            except outbox.PlanConflict:
                continue  # a run without the lock (an older release) enqueued meanwhile
            return list(planned.values())
    finally:
        lock.release()
    raise outbox.too_busy("try again in a moment")


_SEVERITY = {"sent": 0, "retry": 1, "unknown": 2, "failed": 3}


def _outcome(email: str, entries: Sequence[tuple[outbox.Queued, str, str]]) -> Outcome:
    """One line per subscriber, even when an older queued digest went out with today's."""
    if not entries:
        return Outcome(email, 0, "nothing new", "")
    status = max((status for _, status, _ in entries), key=_SEVERITY.__getitem__)
    papers_sent = sum(queued.paper_count for queued, _, _ in entries)
    return Outcome(email, papers_sent, status, "; ".join(where for _, _, where in entries))


@dataclass(frozen=True)
class Unsubscribed:
    """What an unsubscribe did: whether the address was new to the suppression list, and how
    many of its queued emails were cancelled."""

    email: str
    new: bool
    cancelled: int


def unsubscribe(engine: Engine, email: str, *, now: datetime, via: str) -> Unsubscribed:
    """Stop all mail to `email` for good, in one transaction: on the suppression list (which
    outlives syncs of a file that still lists it), its subscriber deactivated, its queued
    emails cancelled. Asking again changes nothing."""
    with write_session(engine) as session:
        new = readers.suppress(session, email, now=now, via=via)
        found = session.exec(select(SubscriberRow.id).where(SubscriberRow.email == email)).first()
        why = "cancelled: the reader unsubscribed"
        cancelled = cancel_queued(session, found, now=now, why=why) if found is not None else 0
    return Unsubscribed(email, new, cancelled)


def resubscribe(engine: Engine, email: str, *, now: datetime) -> bool:
    """Take `email` off the suppression list and make its subscriber active again (a sync
    of a file that no longer lists it deactivates it as usual). False if it was not on the
    list."""
    with write_session(engine) as session:
        if not readers.unsuppress(session, email):
            return False
        row = session.exec(select(SubscriberRow).where(SubscriberRow.email == email)).first()
        if row is not None and not row.active:
            row.active, row.updated_at = True, now
            session.add(row)
    return True
