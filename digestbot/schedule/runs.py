"""Schedule stage: the runs behind `digestbot run`, due digest periods and instant alerts."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from email.utils import make_msgid

from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError

from digestbot.addresses import smtp_address
from digestbot.compose.render import Envelope, build_message, make_environment, render_admin
from digestbot.delivery import outbox
from digestbot.delivery.pipeline import enqueue_digests, enqueue_in_chunks
from digestbot.delivery.send import Feed, Report, deliver_while
from digestbot.delivery.transport import Outbound, open_transport, send
from digestbot.ingest import papers
from digestbot.models import Digest, Subscriber
from digestbot.rules import history
from digestbot.rules.digests import build_digests
from digestbot.rules.likestore import like_model, uses_like
from digestbot.rules.plan import digests_for
from digestbot.rules.subscribers import active_subscribers
from digestbot.schedule import ledger
from digestbot.schedule.periods import Period, latest_period, local_day_start
from digestbot.settings import Settings
from digestbot.store.lock import PlanningLock
from digestbot.store.thread import DbThread

ALERT_WINDOW = timedelta(microseconds=1)  # an ingest's papers have first_seen == its `now`


@dataclass(frozen=True)
class Decision:
    """What a tick decided: emails queued and periods closed with nothing to send."""

    emails: int = 0
    empty: int = 0


def latest_periods(
    subscribers: Sequence[Subscriber], now: datetime
) -> list[tuple[Subscriber, Period]]:
    """Each subscriber's latest period due by `now`, decided or not.

    Only the latest period counts, so a day of downtime gives one catch-up digest, not
    several; a period due before the subscriber was added is not theirs.
    """
    latest = []
    for sub in subscribers:
        period = latest_period(sub.timezone, sub.send_at, sub.frequency, now)
        if period is None:
            continue
        if sub.created_at is not None and period.due_at < sub.created_at:
            continue
        latest.append((sub, period))
    return latest


async def send_due(
    engine: Engine, settings: Settings, *, now: datetime, halt: asyncio.Event | None = None
) -> tuple[Decision, Report]:
    """Decide every due period and send the digests as they are rendered and committed
    (each chunk's periods with its emails), together with every other row that is due."""
    return await deliver_while(
        engine,
        settings,
        lambda feed, db: _decide(engine, settings, now=now, feed=feed, db=db),
        now=now,
        halt=halt,
    )


async def _decide(
    engine: Engine, settings: Settings, *, now: datetime, feed: Feed, db: DbThread
) -> Decision:
    feed.put(await db.run(outbox.due_ids, engine, now=now))  # retries and older rows first
    lock = PlanningLock(engine)
    await asyncio.to_thread(lock.acquire)  # not on the database thread: the senders use it
    try:
        return await _decide_locked(engine, settings, now=now, feed=feed, db=db)
    finally:
        lock.release()


async def _decide_locked(
    engine: Engine, settings: Settings, *, now: datetime, feed: Feed, db: DbThread
) -> Decision:
    for _ in range(outbox.PLAN_ATTEMPTS):
        token = await db.run(outbox.state_token, engine)
        subscribers = await db.run(active_subscribers, engine)
        latest = latest_periods(subscribers, now)
        dates = {period.key for _, period in latest}  # a few local dates
        decided = await db.run(ledger.decided_keys, engine, dates)
        due = [(sub, period) for sub, period in latest if (sub.id, period.key) not in decided]
        if not due:
            return Decision()
        keys = {sub.id: period.key for sub, period in due}
        planned = await db.run(
            digests_for, engine, settings, [sub for sub, _ in due], now=now, period_keys=keys
        )
        digests = list(planned)  # deciding is work for this thread, not the database's
        periods = {
            sub.id: ledger.Decided(sub.id, period.key, period.due_at, len(digest.items))
            for (sub, period), digest in zip(due, digests, strict=True)
        }
        # A digest that could not be decided is queued too, as a failed row with the reason.
        sending = {
            d.subscriber.id for d in digests if d.items or d.problem or d.subscriber.send_empty
        }
        decided_now = ledger.ByChunk(periods, sending, now=now)
        try:
            await enqueue_in_chunks(
                engine,
                settings,
                digests,
                now=now,
                token=token,
                feed=feed,
                db=db,
                send_empty=True,
                also=decided_now.record,
            )
        except (outbox.PlanConflict, IntegrityError):
            continue  # another process decided something meanwhile: decide again
        emails = len(sending)
        return Decision(emails, len(digests) - emails)
    raise outbox.too_busy("this resolves itself next tick")


def plan_alerts(
    engine: Engine,
    settings: Settings,
    *,
    since: datetime,
    now: datetime,
    span: tuple[int, int] | None = None,
) -> list[Digest]:
    """One alert per subscriber with `mode: alert` rules matching papers first seen after
    `since` and by `now` (this ingest's new papers), unless they reached today's alert cap;
    only for subscribers with ids in `span` (a worker's slice), when given."""
    subscribers = [
        replace(sub, rules=sub.alert_rules())
        for sub in active_subscribers(engine, span=span)
        if sub.alert_rules()
    ]
    starts = {sub.id: local_day_start(sub.timezone, now) for sub in subscribers}
    counts = history.alerts_since(engine, starts)
    subscribers = [s for s in subscribers if counts.get(s.id, 0) < settings.alert_daily_cap]
    candidates = [p for p in papers.papers_seen_since(engine, since) if p.first_seen <= now]
    if not subscribers or not candidates:
        return []
    taken = history.taken_since(engine, since, span)
    digests = build_digests(
        subscribers,
        candidates,
        since=dict.fromkeys((s.id for s in subscribers), since),
        already_sent=taken,
        now=now,
        period_key=f"alert:{now.isoformat()}",
        model=like_model(engine, settings, candidates) if uses_like(subscribers) else None,
    )
    return [replace(d, kind="alert") for d in digests if d.items or d.problem]


def enqueue_alerts(engine: Engine, settings: Settings, *, since: datetime, now: datetime) -> int:
    """Queue the alerts for papers first seen after `since`; return how many."""
    lock = PlanningLock(engine)
    lock.acquire()
    try:
        for _ in range(outbox.PLAN_ATTEMPTS):
            token = outbox.state_token(engine)
            alerts = plan_alerts(engine, settings, since=since, now=now)
            try:
                enqueue_digests(engine, settings, alerts, now=now, token=token)
            except outbox.PlanConflict:
                continue
            return len(alerts)
    finally:
        lock.release()
    raise outbox.too_busy("this resolves itself next tick")


async def notify_admin(settings: Settings, subject: str, body: str, *, now: datetime) -> str | None:
    """Email the operator (DIGESTBOT_ADMIN_EMAIL) directly, outside the outbox; None if unset."""
    if not settings.admin_email:
        return None
    env = make_environment(settings.templates_dir)
    rendered = render_admin(env, subject, body, recipient=settings.admin_email, now=now)
    envelope = Envelope(
        sender=smtp_address(settings.from_address),
        sender_name=settings.from_name,
        recipient=smtp_address(settings.admin_email),
        recipient_name="",
        message_id=make_msgid("admin", domain=settings.from_domain),
        date=now,
        bulk=False,
    )
    transport = open_transport(settings)
    try:
        outbound = Outbound(
            build_message(rendered, envelope), envelope.sender, (envelope.recipient,)
        )
        return await send(outbound, transport)
    finally:
        await transport.close()
