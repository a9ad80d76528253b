"""Schedule stage: the single-process daemon's delivery job: decide due periods and send
every due row, logging failures sparingly and telling the operator when they persist."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime

from sqlalchemy import Engine

from digestbot.delivery.outbox import counts_by_status
from digestbot.delivery.send import deliver
from digestbot.delivery.transport import TransportUnavailable
from digestbot.errors import DigestbotError
from digestbot.schedule import runs
from digestbot.schedule.watch import FailureStreak
from digestbot.settings import Settings
from digestbot.store.tables import CLAIMABLE

log = logging.getLogger("digestbot.run")


class Sending:
    """Delivery runs of one daemon, one at a time, and the streak of their failures."""

    def __init__(self, settings: Settings, engine: Engine, halt: asyncio.Event) -> None:
        self.settings, self.engine, self.halt = settings, engine, halt
        self.lock = asyncio.Lock()
        self.failures = FailureStreak()

    async def deliver(self, now: datetime, *, decide: bool = True) -> None:
        """Decide due periods (unless only alerts are waiting) and send every due row."""
        async with self.lock:
            try:
                if decide:
                    decision, report = await runs.send_due(
                        self.engine, self.settings, now=now, halt=self.halt
                    )
                    if decision.emails or decision.empty:
                        log.info(
                            "digests: %d queued, %d periods with nothing to send",
                            decision.emails,
                            decision.empty,
                        )
                else:
                    report = await deliver(self.engine, self.settings, now=now, halt=self.halt)
            except TransportUnavailable as exc:
                await self._failed(exc, now)
                return
            if failed := self.failures.succeeded():
                log.info("delivery recovered after %d failed ticks", failed)
            if report.results or report.recovered:
                counts = {s: report.count(s) for s in ("sent", "retry", "failed", "unknown")}
                log.info("delivery: %s", ", ".join(f"{v} {k}" for k, v in counts.items()))

    async def _failed(self, exc: TransportUnavailable, now: datetime) -> None:
        """Log a failed delivery sparingly (see FailureStreak), with how many emails wait;
        tell the operator once the streak reaches the alert threshold."""
        streak = self.failures
        if streak.failed():
            states = await asyncio.to_thread(counts_by_status, self.engine)
            waiting = sum(states.get(state, 0) for state in CLAIMABLE)
            log.error(
                "delivery failed (%d in a row, %d email(s) waiting): %s; next report at %d",
                streak.count,
                waiting,
                exc,
                streak.next_report(),
            )
        else:
            log.debug("delivery failed (%d in a row): %s", streak.count, exc)
        if streak.count == self.settings.admin_alert_after:
            await self.tell_admin("delivery keeps failing", str(exc), now)

    async def tell_admin(self, subject: str, detail: str, now: datetime) -> None:
        try:
            where = await runs.notify_admin(self.settings, subject, detail, now=now)
        except DigestbotError as exc:
            log.error("could not email the operator: %s", exc)
            return
        if where:
            log.info("operator told: %s (%s)", subject, where)
