"""Schedule stage: the `digestbot run` daemon — APScheduler jobs over the scheduled-runs library.

Jobs are rebuilt from the subscriptions file at every start and on every valid edit: one
ingest job per source (its cron, UTC), one digest job per distinct (timezone, send_at,
frequency), and a tick that checks the lock, reloads edits, catches up due periods and sends
retries. APScheduler forgets runs missed while the process was down; the period ledger does not.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Awaitable, Callable
from contextlib import ExitStack
from datetime import UTC, datetime

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine

from digestbot.compose.words import plural
from digestbot.errors import DigestbotError
from digestbot.rules.likestore import SeedBook
from digestbot.rules.sources import SourceConfig, cron_trigger
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import SubscriptionsFile, load_subscriptions
from digestbot.schedule import ledger, lookups, runs, sourcejob, standby, startup, tasks
from digestbot.schedule.sending import Sending
from digestbot.schedule.triggers import digest_trigger, missed_run
from digestbot.schedule.watch import file_stamp
from digestbot.schedule.worker import Worker
from digestbot.settings import Settings
from digestbot.store.lock import DaemonLock, try_daemon_lock
from digestbot.store.tables import JobRow

log = logging.getLogger("digestbot.run")
Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class Daemon:
    """One `digestbot run`: holds the lock, runs the jobs, stops cleanly on a signal."""

    def __init__(
        self, settings: Settings, engine: Engine, *, clock: Clock = utc_now, work: bool = True
    ) -> None:
        self.settings, self.engine, self.clock = settings, engine, clock
        # On PostgreSQL digests and alerts are rounds of slices that workers share (this
        # process among them, unless not `work`); on SQLite this process does it all.
        self.shared = engine.dialect.name == "postgresql"
        self.work = work
        self.config: SubscriptionsFile | None = None
        self.stamp: tuple[int, int] | None = None
        self.halt = asyncio.Event()
        self.scheduler = AsyncIOScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 3600},
        )
        self.lookup_lock = asyncio.Lock()  # one arXiv lookup run at a time, as arXiv asks
        self.sending = Sending(settings, engine, self.halt)
        self.running: set[asyncio.Task[None]] = set()
        self.lock: DaemonLock | None = None  # held from `run` on
        self.lock_lost = False

    # -- configuration -------------------------------------------------------------------

    def reload(self, *, now: datetime) -> bool:
        """Load the subscriptions file if it changed; a bad edit is logged and ignored."""
        path = self.settings.subscriptions
        stamp = file_stamp(path)
        if self.config is not None and stamp == self.stamp:
            return False
        try:
            config = load_subscriptions(path, check_seed=SeedBook(self.engine).problem)
        except DigestbotError as exc:
            if self.config is None:
                raise
            self.stamp = stamp  # log a bad edit once, not every tick
            log.error("subscriptions file not reloaded, the last good one stays in force: %s", exc)
            return False
        self._apply(config, stamp, now=now)
        return True

    def _apply(
        self, config: SubscriptionsFile, stamp: tuple[int, int] | None, *, now: datetime
    ) -> None:
        """Put a parsed subscriptions file in force: subscribers synced (suppressed addresses
        kept inactive, each logged), jobs rebuilt."""
        result = sync_subscriptions(self.engine, config, now=now)
        self.config, self.stamp = config, stamp
        log.info(
            "subscriptions loaded from %s: %s (%d added, %d changed, %d removed)",
            self.settings.subscriptions,
            plural(len(config.subscribers), "subscriber"),
            len(result.added) + len(result.reactivated),
            len(result.changed),
            len(result.deactivated),
        )
        # The file is read again only when it changes, so each warning is logged once per edit.
        for held in result.suppressed:
            log.warning("%s", held.warning())
        self.build_jobs(config)

    def build_jobs(self, config: SubscriptionsFile) -> None:
        """Replace every job with those `config` asks for."""
        self.scheduler.remove_all_jobs()
        for source in config.sources:
            name = source.spec().name
            self._add(
                f"ingest {name}", cron_trigger(source.effective_schedule()), self.ingest, source
            )
        for sub in config.subscribers:
            when = config.schedule_of(sub)
            job_id = f"digests {when[1]} {when[0]} {when[2]}"
            if self.scheduler.get_job(job_id) is None:
                self._add(job_id, digest_trigger(*when), self.tick)
        tick = IntervalTrigger(seconds=self.settings.tick_seconds, timezone=UTC)
        self._add("tick", tick, self.tick)
        self.save_jobs()

    def _add(
        self,
        job_id: str,
        trigger: object,
        func: Callable[..., Awaitable[str | None]],
        *args: object,
    ) -> None:
        self.scheduler.add_job(
            self._job,
            trigger,
            args=(job_id, func, *args),
            id=job_id,
            name=job_id,
            replace_existing=True,
        )

    def job_rows(self) -> list[JobRow]:
        return [
            JobRow(id=job.id, description=job.name, next_run_at=getattr(job, "next_run_time", None))
            for job in self.scheduler.get_jobs()
        ]

    def save_jobs(self) -> None:
        ledger.save_jobs(self.engine, self.job_rows())

    # -- jobs ----------------------------------------------------------------------------

    async def _job(
        self, job_id: str, func: Callable[..., Awaitable[str | None]], *args: object
    ) -> None:
        """Run one job unless stopping; log what it raised instead of dying. A job that
        handled its own failure returns what went wrong, for its last result."""
        if self.halt.is_set():
            return
        task = asyncio.current_task()
        if task is None:  # APScheduler's asyncio executor runs each job as a task
            raise RuntimeError(f"job {job_id} runs outside an asyncio task")
        self.running.add(task)
        result = "ok"
        try:
            failed = await func(*args)
            if failed:
                result = f"error: {failed}"
        except DigestbotError as exc:
            result = f"error: {exc}"
            log.error("%s: %s", job_id, exc)
        except Exception as exc:  # a bug must not stop the daemon; it is logged in full
            result = f"crashed: {exc!r}"
            log.exception("%s crashed", job_id)
        finally:
            self.running.discard(task)
        # In threads, like all the daemon's database work: a write lock held by another process
        # must stall this job alone, not the event loop every other job (and SMTP) runs on.
        await asyncio.to_thread(
            ledger.note_job_run, self.engine, job_id, now=self.clock(), result=result
        )
        await asyncio.to_thread(ledger.save_jobs, self.engine, self.job_rows())

    async def tick(self) -> None:
        """Check the lock, renew the lease, pick up edits, decide due periods and send."""
        now = self.clock()
        if self.lock is not None and not self.lock.held():
            log.error("lost the database lock to another `digestbot run`; stopping")
            self.lock_lost = True
            self.halt.set()
            return
        await asyncio.to_thread(ledger.renew_lease, self.engine, now=now)
        self.reload(now=now)
        await self.deliver(now)

    async def ingest(self, source: SourceConfig) -> str | None:
        """Ingest one source; alert on its new papers at once. Returns why it failed."""
        now, spec = self.clock(), source.spec()
        try:
            done = await sourcejob.ingest_spec(
                self.engine, self.settings, spec, now=now, halt=self.halt
            )
        except DigestbotError as exc:
            done = sourcejob.Ingested(error=str(exc))
        if done.stopped:
            return None
        failures = await asyncio.to_thread(
            ledger.record_source_run,
            self.engine,
            spec.name,
            now=now,
            new=done.new,
            error=done.error,
        )
        if done.error:
            log.error("ingest %s failed (%d in a row): %s", spec.name, failures, done.error)
            if failures == self.settings.admin_alert_after:
                await self.sending.tell_admin(
                    f"{spec.name} failed {failures} times in a row", done.error, now
                )
        # The lookups come before the alerts: a saved page's papers meet author and category
        # rules only once arXiv has given them authors and categories, and one ingest
        # makes at most one alert per reader.
        async with self.lookup_lock:
            found = await lookups.look_up_waiting(
                self.engine, self.settings, now=self.clock(), halt=self.halt
            )
        if done.new or found:
            await self.after_new_papers(now)
        return done.error

    async def after_new_papers(self, now: datetime) -> None:
        """What follows every ingest that stored new papers (or gave stored ones their arXiv
        records), whatever the source: alerts."""
        if self.shared:
            slices = await asyncio.to_thread(
                tasks.make_round,
                self.engine,
                "alert",
                at=now,
                size=self.settings.slice_size,
                now=now,
            )
            log.info("alerts: a round of %s for the workers", plural(slices, "slice"))
            return
        since = now - runs.ALERT_WINDOW
        alerts = await asyncio.to_thread(
            runs.enqueue_alerts, self.engine, self.settings, since=since, now=now
        )
        log.info("alerts: %d queued", alerts)
        if alerts:
            await self.deliver(now, decide=False)

    async def deliver(self, now: datetime, *, decide: bool = True) -> None:
        """Decide due periods (unless only alerts are waiting) and send every due row;
        with shared work, only make the round of slices the workers decide and send."""
        if self.shared:
            if decide:
                made = await asyncio.to_thread(
                    tasks.start_digest_round, self.engine, self.settings, now=now
                )
                if made:
                    log.info("digests: a round of %s for the workers", plural(made, "slice"))
            return
        await self.sending.deliver(now, decide=decide)

    # -- lifecycle -----------------------------------------------------------------------

    async def catch_up(self, config: SubscriptionsFile) -> None:
        """At start: ingest sources whose schedule fired while we were down, then send."""
        runs = await asyncio.to_thread(ledger.source_runs, self.engine)
        now = self.clock()
        for source in config.sources:
            last = runs.get(source.spec().name)
            if missed_run(source.effective_schedule(), last.last_success_at if last else None, now):
                await self._job(f"ingest {source.spec().name}", self.ingest, source)
        await self._job("tick", self.tick)

    async def run(self) -> None:
        """Run until SIGTERM or SIGINT; the message in flight finishes; the lock is released."""
        path = self.settings.subscriptions
        stamp = file_stamp(path)  # before reading: an edit after it reloads next tick
        # A broken file stops us before any write.
        config = load_subscriptions(path, check_seed=SeedBook(self.engine).problem)
        lock = try_daemon_lock(self.engine)
        if lock is None and not (self.shared and self.work):
            raise standby.refusal(self.engine)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop)
        working = None
        if self.shared and self.work:
            working = asyncio.ensure_future(
                Worker(self.settings, self.engine, halt=self.halt).run()
            )
        try:
            if lock is None:
                log.info("%s; this one works on its slices", standby.refusal(self.engine).message)
                lock = await standby.stand_by(self.engine, self.halt, self.settings.tick_seconds)
            if lock is not None:
                with ExitStack() as held:
                    held.callback(lock.release)
                    self.lock = lock
                    ledger.take_lease(self.engine, now=self.clock())
                    await self._serve(config, stamp, now=self.clock())
        finally:
            self.halt.set()
            if working is not None:
                await asyncio.gather(working, return_exceptions=True)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.remove_signal_handler(sig)

    async def _serve(
        self, config: SubscriptionsFile, stamp: tuple[int, int] | None, *, now: datetime
    ) -> None:
        """Run the jobs until halted; on the way out forget them and the lease, unless
        another process holds the lock by then."""
        try:
            for line in startup.setup_lines(self.settings, config):
                log.info("%s", line)
            self._apply(config, stamp, now=now)
            self.scheduler.start()
            self.save_jobs()
            next_runs = {row.id: row.next_run_at for row in self.job_rows()}
            for line in startup.job_lines(self.settings, config, next_runs):
                log.info("%s", line)
            log.info("running: %d jobs", len(self.scheduler.get_jobs()))
            await self.catch_up(config)
            await self.halt.wait()
        finally:
            # Jobs in flight finish before the scheduler shuts down: its shutdown cancels
            # them, which breaks off their work and logs a traceback as an ERROR.
            if self.scheduler.running:
                self.scheduler.pause()
            await asyncio.sleep(0)  # a job handed to its task just now sees the halt and returns
            await asyncio.gather(*self.running, return_exceptions=True)
            if self.scheduler.running:
                self.scheduler.shutdown(wait=False)
            if not self.lock_lost:
                ledger.release_lease(self.engine)
            log.info("stopped")

    def stop(self) -> None:
        """Take no new work; fetches in flight are cancelled, sending finishes its message."""
        if not self.halt.is_set():
            log.info("stopping: finishing the work in flight")
        self.halt.set()
