"""Schedule stage: a worker (`digestbot worker`, or the one inside `digestbot run` on
PostgreSQL) takes slices of shared work, queues their emails and sends them, until stopped.

Slices are worked on a thread while this loop's senders send what earlier slices queued; an
idle worker also sends whatever else is due (retries, and the rows of a worker that died),
so retries are shared like slices. A clean stop finishes the slice and the message in flight.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from digestbot.delivery import outbox
from digestbot.delivery.send import Feed, deliver, deliver_while
from digestbot.delivery.transport import TransportUnavailable
from digestbot.errors import DigestbotError
from digestbot.rules.plan import RoundPapers
from digestbot.schedule import slices, tasks
from digestbot.schedule.watch import FailureStreak
from digestbot.settings import Settings

log = logging.getLogger("digestbot.worker")
Clock = Callable[[], datetime]
HEARTBEAT = 10.0  # seconds between a worker's notes that it lives
LIVE = timedelta(seconds=3 * HEARTBEAT)  # silent for longer: not listed as live


def utc_now() -> datetime:
    return datetime.now(UTC)


class Worker:
    """One process's share of the work: slices claimed, queued and sent; counts kept."""

    def __init__(
        self,
        settings: Settings,
        engine: Engine,
        *,
        halt: asyncio.Event | None = None,
        clock: Clock = utc_now,
    ) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        self.halt = halt or asyncio.Event()
        self.name = outbox.owner()
        self.slices = 0  # slices done
        self.sent = 0  # emails sent
        self.lease = timedelta(seconds=settings.worker_lease)
        self.rounds: dict[str, RoundPapers] = {}  # by kind: the latest round's papers
        self.failures = FailureStreak()

    async def run(self) -> None:
        """Work until halted; the worker's row is kept live meanwhile and dropped at the end."""
        await asyncio.to_thread(tasks.register, self.engine, self.name, now=self.clock())
        log.info("worker %s: taking slices of this database's digests and alerts", self.name)
        beating = asyncio.ensure_future(self._beat_until_halted())
        try:
            while not self.halt.is_set():
                worked = await self._work()
                if not worked and not self.halt.is_set():
                    await self._sweep()
                    await self._pause(self.settings.worker_poll)
        finally:
            beating.cancel()
            await asyncio.gather(beating, return_exceptions=True)
            try:
                await asyncio.to_thread(tasks.leave, self.engine, self.name)
            except SQLAlchemyError as exc:
                log.warning("could not remove this worker's row: %s", exc)
            log.info("worker %s stopped: %d slices done, %d emails sent", *self._tally())

    async def _work(self) -> int:
        """Take slices until none is left, sending their emails as they are queued; returns
        how many slices were done. A failure is logged and waited out, never raised."""
        try:
            first = await self._claim()
            if first is None:
                return 0  # idle: no senders started, no SMTP connection opened
            done, report = await deliver_while(
                self.engine,
                self.settings,
                lambda feed, db: self._slices(feed, first),
                now=self.clock(),
                halt=self.halt,
            )
        except (DigestbotError, SQLAlchemyError) as exc:
            await self._failed(exc)
            return 0
        self.failures.succeeded()
        self.sent += report.count("sent")
        return done

    def _tally(self) -> tuple[str, int, int]:
        return self.name, self.slices, self.sent

    async def _claim(self) -> tasks.Task | None:
        return await asyncio.to_thread(
            tasks.claim, self.engine, by=self.name, now=self.clock(), lease=self.lease
        )

    async def _slices(self, feed: Feed, first: tasks.Task) -> int:
        """Work slices one at a time from `first`, handing each one's rows to the senders."""
        done = 0
        task: tasks.Task | None = first
        while task is not None:
            finished = await self._one(task)
            if finished is not None:
                feed.put(finished.ids)
                done += 1
            if self.halt.is_set() or feed.cancelled:
                break
            task = await self._claim()
        return done

    async def _one(self, task: tasks.Task) -> slices.SliceDone | None:
        """Work one slice; on failure give it back (to be tried again) and say why."""
        shared = self.rounds.get(task.kind)
        if shared is None or shared.at != task.at:
            shared = self.rounds[task.kind] = RoundPapers(task.at)
        try:
            done = await asyncio.to_thread(
                slices.work_slice,
                self.engine,
                self.settings,
                task,
                by=self.name,
                shared=shared,
                clock=self.clock,
            )
        except slices.SliceLost as exc:
            log.warning("%s", exc)
            return None
        except Exception as exc:  # one slice's failure must not stop the worker
            log.error("slice %d-%d of %s failed: %s", task.first_id, task.last_id, task.round, exc)
            await self._give_back(task, f"{exc.__class__.__name__}: {exc}")
            return None
        self.slices += 1
        log.info(
            "%s slice %d-%d: %d queued in %.2f s",
            task.kind,
            task.first_id,
            task.last_id,
            done.emails,
            done.seconds,
        )
        return done

    async def _give_back(self, task: tasks.Task, why: str) -> None:
        try:
            await asyncio.to_thread(
                tasks.give_back, self.engine, task, by=self.name, now=self.clock(), error=why
            )
        except SQLAlchemyError as exc:  # the database is gone: the lease runs out instead
            log.warning("could not give slice %d-%d back: %s", task.first_id, task.last_id, exc)

    async def _sweep(self) -> None:
        """Send every other row that is due: retries, and rows queued by a worker that
        stopped before sending them (claims keep two workers off the same row)."""
        try:
            ids = await asyncio.to_thread(outbox.due_ids, self.engine, now=self.clock())
            if ids:
                feed = Feed(ids)
                feed.close()
                report = await deliver(
                    self.engine, self.settings, now=self.clock(), feed=feed, halt=self.halt
                )
                self.sent += report.count("sent")
        except (DigestbotError, SQLAlchemyError) as exc:
            await self._failed(exc)

    async def _failed(self, exc: Exception) -> None:
        """Log a failure sparingly and pause before the next try."""
        streak = self.failures
        if streak.failed():
            log.error("worker: %s (%d in a row)", exc, streak.count)
        if not isinstance(exc, TransportUnavailable):
            await self._pause(min(60.0, self.settings.worker_poll * streak.count))
        else:
            await self._pause(min(300.0, self.settings.worker_poll * 2**streak.count))

    async def _beat_until_halted(self) -> None:
        while not self.halt.is_set():
            await self._pause(HEARTBEAT)
            try:
                await asyncio.to_thread(
                    tasks.beat,
                    self.engine,
                    self.name,
                    now=self.clock(),
                    slices=self.slices,
                    emails=self.sent,
                )
            except SQLAlchemyError as exc:
                log.warning("worker heartbeat failed: %s", exc)

    async def _pause(self, seconds: float) -> None:
        """Wait `seconds`, or less when halted."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.halt.wait(), timeout=seconds)
