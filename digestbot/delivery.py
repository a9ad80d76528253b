"""Delivery: send due outbox rows over a few reused SMTP connections, and close each row."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import Engine

from digestbot import outbox
from digestbot.errors import DeliveryError
from digestbot.mailer import (
    DeliveryUnknown,
    RateLimit,
    Transport,
    TransportUnavailable,
    open_transport,
    send,
)
from digestbot.settings import Settings

Progress = Callable[[str], None]


@dataclass
class Report:
    """What a delivery run did to each row it touched."""

    results: list[tuple[outbox.Queued, str, str]] = field(default_factory=list)
    recovered: int = 0

    def count(self, status: str) -> int:
        return sum(1 for _, s, _ in self.results if s == status)


def next_attempt(settings: Settings, attempts: int, now: datetime) -> datetime:
    """Exponential backoff with jitter: base, 2x base, 4x base… each scaled by 0.5-1.5."""
    delay = settings.retry_backoff * 2 ** max(0, attempts - 1) * random.uniform(0.5, 1.5)
    return now + timedelta(seconds=delay)


async def deliver(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    subscriber_ids: Sequence[int] | None = None,
    progress: Progress | None = None,
    halt: asyncio.Event | None = None,
) -> Report:
    """Send every due row; an unreachable server stops the batch and leaves the rest as they were.

    Rows a crashed run left `sending` become `unknown` first, so they are never resent blindly.
    Setting `halt` (a clean stop) lets each connection finish the message in flight, no more.
    """
    report = Report(
        recovered=outbox.recover(engine, now=now, lease=timedelta(seconds=settings.sending_lease))
    )
    queue: asyncio.Queue[outbox.Queued] = asyncio.Queue()
    for row in outbox.due(engine, now=now, subscriber_ids=subscriber_ids):
        queue.put_nowait(row)
    workers = (
        min(settings.smtp_connections, queue.qsize())
        if settings.effective_transport == "smtp"
        else 1
    )
    limit = RateLimit(settings.smtp_rate)
    stop = asyncio.Event()
    by = outbox.owner()

    async def worker() -> None:
        transport = open_transport(settings)
        try:
            while not (stop.is_set() or (halt and halt.is_set()) or queue.empty()):
                row = queue.get_nowait()
                await limit.wait()  # before the claim, so a row is `sending` only while sent
                if not outbox.claim(engine, row.id, now=now, by=by):
                    continue
                status, detail = await _attempt(engine, settings, transport, row, now)
                report.results.append((row, status, detail))
                if progress:
                    progress(status)
        except TransportUnavailable:
            stop.set()
            raise
        finally:
            await transport.close()

    results = await asyncio.gather(
        *(worker() for _ in range(max(1, workers))), return_exceptions=True
    )
    failure = next((r for r in results if isinstance(r, BaseException)), None)
    if failure is not None:
        raise failure
    return report


async def _attempt(
    engine: Engine, settings: Settings, transport: Transport, row: outbox.Queued, now: datetime
) -> tuple[str, str]:
    """Send one claimed row and close it; return its new status and where or why."""
    try:
        where = await send(row.outbound, transport)
    except TransportUnavailable:
        outbox.unclaim(engine, row.id, now=now)
        raise
    except DeliveryUnknown as exc:
        outbox.close(engine, row.id, status="unknown", error=str(exc), now=now)
        return "unknown", str(exc)
    except DeliveryError as exc:
        attempts = row.attempts + 1
        if exc.permanent or attempts >= settings.max_attempts:
            outbox.close(engine, row.id, status="failed", error=str(exc), now=now)
            return "failed", str(exc)
        when = next_attempt(settings, attempts, now)
        outbox.close(engine, row.id, status="retry", error=str(exc), now=now, next_attempt_at=when)
        return "retry", str(exc)
    outbox.mark_sent(engine, row.id, where=where, now=now)
    return "sent", where
