"""Delivery stage: send due outbox rows over a few reused SMTP connections, and close each row.

Each connection claims a row just before sending it and closes it in the same write
transaction as its next claim, so a crash leaves at most one row per connection `sending`.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import TypeVar

from sqlalchemy import Connection, Engine

from digestbot.delivery import claims, outbox
from digestbot.delivery.transport import (
    DeliveryUnknown,
    RateLimit,
    Transport,
    TransportUnavailable,
    open_transport,
    send,
)
from digestbot.errors import DeliveryError
from digestbot.settings import Settings
from digestbot.store.thread import DbThread

Progress = Callable[[str], None]
T = TypeVar("T")


@dataclass
class Report:
    """What a delivery run did to each row it touched."""

    results: list[tuple[outbox.Queued, str, str]] = field(default_factory=list)
    recovered: int = 0
    # Emails stored `failed` before any attempt (they could not be planned or rendered):
    # (subscriber id, why).
    unsendable: list[tuple[int, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        attempted = sum(1 for _, s, _ in self.results if s == status)
        return attempted + (len(self.unsendable) if status == "failed" else 0)


def next_attempt(settings: Settings, attempts: int, now: datetime) -> datetime:
    """Exponential backoff with jitter: base, 2x base, 4x base… each scaled by 0.5-1.5."""
    delay = settings.retry_backoff * 2 ** max(0, attempts - 1) * random.uniform(0.5, 1.5)
    return now + timedelta(seconds=delay)


class Feed:
    """Ids of committed rows for the senders, in order, as they become available; closed
    when no more will come. A sender that hits an unusable transport cancels it."""

    def __init__(self, ids: Iterable[int] = ()) -> None:
        self._ids: deque[int] = deque(ids)
        self._more = asyncio.Event()
        self.closed = False
        self.cancelled = False
        self.unsendable: list[tuple[int, str]] = []  # see Report.unsendable

    def put(self, ids: Sequence[int]) -> None:
        """Add `ids`, unless the feed was cancelled."""
        if not self.cancelled:
            self._ids.extend(ids)
            self._more.set()

    def close(self) -> None:
        self.closed = True
        self._more.set()

    def cancel(self) -> None:
        self.cancelled = True
        self._ids.clear()
        self.close()

    def take(self) -> int | None:
        """The next id if one is ready now, else None."""
        return self._ids.popleft() if self._ids else None

    async def next(self) -> int | None:
        """The next id, waiting for one; None once the feed is closed and drained."""
        while not self._ids and not self.closed:
            self._more.clear()
            await self._more.wait()
        return self.take()


Clock = Callable[[], datetime]


def clock_from(now: datetime) -> Clock:
    """A clock that reads `now` at first and moves on with the real time, so every claim,
    close and retry of a long batch is stamped when it happens (a batch stamped with its start
    outlives DIGESTBOT_SENDING_LEASE, and another run takes its live rows for crashed)."""
    started = time.monotonic()
    return lambda: now + timedelta(seconds=time.monotonic() - started)


async def deliver_while(
    engine: Engine,
    settings: Settings,
    decide: Callable[[Feed, DbThread], Awaitable[T]],
    *,
    now: datetime,
    progress: Progress | None = None,
    halt: asyncio.Event | None = None,
) -> tuple[T, Report]:
    """Send the rows `decide` puts in the feed while it decides and commits them (its database
    work on the batch's database thread); if deciding fails, the senders stop after the
    message in flight and it re-raises."""
    feed = Feed()
    with DbThread() as db:
        sending = asyncio.ensure_future(
            deliver(engine, settings, now=now, progress=progress, feed=feed, halt=halt, db=db)
        )
        try:
            decided = await decide(feed, db)
        except BaseException:
            feed.cancel()
            await asyncio.gather(sending, return_exceptions=True)
            raise
        feed.close()
        try:
            return decided, await sending
        except TransportUnavailable as exc:
            # Rows committed after the senders stopped carry no note of why yet.
            await db.run(outbox.note_held_back, engine, str(exc), now=now)
            raise


async def deliver(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    progress: Progress | None = None,
    feed: Feed | None = None,
    halt: asyncio.Event | None = None,
    db: DbThread | None = None,
) -> Report:
    """Send every row due at `now` (or, with `feed`, the rows it yields until it is closed);
    an unreachable server stops the batch and leaves the rest as they were.

    Rows a crashed run left `sending` become `unknown` first, so they are never resent blindly;
    after a batch that sent anything, rows finished longer ago than
    DIGESTBOT_KEEP_MESSAGES_DAYS lose their stored messages.
    Setting `halt` (a clean stop) lets each connection finish the message in flight, no more.
    """
    if db is None:
        with DbThread() as own:
            return await deliver(
                engine, settings, now=now, progress=progress, feed=feed, halt=halt, db=own
            )
    clock = clock_from(now)
    lease = timedelta(seconds=settings.sending_lease)
    report = Report(recovered=await db.run(outbox.recover, engine, now=clock(), lease=lease))
    if feed is None:
        feed = Feed(await db.run(outbox.due_ids, engine, now=now))
        feed.close()
    workers = settings.smtp_connections if settings.effective_transport == "smtp" else 1
    # One database connection for every SMTP connection's claims and closes, used on the
    # batch's one database thread, so their transactions never overlap and the pool is not
    # held a connection per SMTP connection (DIGESTBOT_SMTP_CONNECTIONS goes up to 64).
    connection = await db.run(engine.connect)
    try:
        sender = _Sender(engine, connection, db, settings, clock, report, progress, feed, halt)
        results = await asyncio.gather(
            *(sender.run() for _ in range(max(1, workers))), return_exceptions=True
        )
    finally:
        await db.run(connection.close)
    report.unsendable = feed.unsendable
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if isinstance(failure, TransportUnavailable):
        await db.run(outbox.note_held_back, engine, str(failure), now=clock())
    if failure is not None:
        raise failure
    if report.results:  # not on every idle scheduler tick
        until = clock() - timedelta(days=settings.keep_messages_days)
        await db.run(outbox.forget_messages, engine, until=until)
    return report


@dataclass
class _Sender:
    """What each connection's loop shares: one rate limit, one report, one feed, one
    database connection on one database thread, one clock."""

    engine: Engine
    connection: Connection
    db: DbThread
    settings: Settings
    clock: Clock
    report: Report
    progress: Progress | None
    feed: Feed
    halt: asyncio.Event | None = None
    limit: RateLimit = field(init=False)
    by: str = field(default_factory=outbox.owner)

    def __post_init__(self) -> None:
        self.limit = RateLimit(self.settings.smtp_rate)

    async def run(self) -> None:
        """One connection: claim a row just before sending it, close it with the next claim."""
        transport = open_transport(self.settings)
        closing: claims.Closing | None = None
        try:
            while True:
                row_id = self.feed.take()
                if closing is not None and (row_id is None or self.limit.interval):
                    # Nothing to claim at once: close now rather than hold a finished row.
                    await self._settle(closing, None)
                    closing = None
                if self.halt is not None and self.halt.is_set():
                    break  # a clean stop: the row just sent is closed below, no new claim
                if row_id is None and (row_id := await self.feed.next()) is None:
                    break
                await self.limit.wait()  # before the claim: a row is `sending` only while sent
                row = await self._settle(closing, row_id)
                closing = None
                if row is not None:
                    closing = await self._attempt(transport, row)
        except TransportUnavailable:
            self.feed.cancel()
            raise
        finally:
            if closing is not None:
                await self._settle(closing, None)
            await transport.close()

    async def _settle(
        self, closing: claims.Closing | None, claim_id: int | None
    ) -> outbox.Queued | None:
        return await self.db.run(
            claims.settle,
            self.connection,
            closing,
            claim_id=claim_id,
            now=self.clock(),
            by=self.by,
        )

    async def _attempt(self, transport: Transport, row: outbox.Queued) -> claims.Closing:
        """Send one claimed row; return how to close it (the caller writes it)."""
        try:
            where = await send(row.outbound, transport)
        except TransportUnavailable:
            await self.db.run(claims.unclaim, self.engine, row.id, now=self.clock())
            raise
        except DeliveryUnknown as exc:
            closing = claims.Closing(row.id, "unknown", str(exc))
        except DeliveryError as exc:
            closing = _failed(self.settings, row, exc, self.clock())
        else:
            closing = claims.Closing(row.id, "sent", where)
        # The report outlives the batch: it keeps the envelope, not the message bytes.
        slim = replace(row, outbound=replace(row.outbound, raw=b""))
        self.report.results.append((slim, closing.status, closing.detail))
        if self.progress:
            self.progress(closing.status)
        return closing


def _failed(
    settings: Settings, row: outbox.Queued, exc: DeliveryError, now: datetime
) -> claims.Closing:
    """A refused or interrupted attempt: failed for good, or retried after a backoff."""
    attempts = row.attempts + 1
    if exc.permanent:
        return claims.Closing(row.id, "failed", str(exc))
    if attempts >= settings.max_attempts:
        # A temporary error's hint promises a retry; this row gets none.
        tries = f"{attempts} attempt{'' if attempts == 1 else 's'}"
        return claims.Closing(row.id, "failed", f"{exc.message} (gave up after {tries})")
    when = next_attempt(settings, attempts, now)
    return claims.Closing(row.id, "retry", str(exc), next_attempt_at=when)
