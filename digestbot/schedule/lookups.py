"""Schedule stage: the daemon's arXiv lookups of title-only papers, after each ingest."""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta

from sqlalchemy import Engine

from digestbot.ingest.enrichstore import RUN_NAME
from digestbot.ingest.load import enrich_waiting
from digestbot.schedule import ledger
from digestbot.schedule.watch import unless_stopped
from digestbot.settings import Settings

log = logging.getLogger("digestbot.run")
# After a failed run the next waits this long, doubling with each failure in a row: a folder
# polled every five minutes must not send a failing API a burst of retries each time.
FIRST_PAUSE = timedelta(minutes=5)
LONGEST_PAUSE = timedelta(hours=6)


def pause_after(failures: int) -> timedelta:
    """How long lookups wait after `failures` failed runs in a row."""
    return min(LONGEST_PAUSE, FIRST_PAUSE * (1 << max(0, min(failures, 12) - 1)))


async def look_up_waiting(
    engine: Engine, settings: Settings, *, now: datetime, halt: asyncio.Event
) -> int:
    """Look the papers known only by title up on arXiv (unless DIGESTBOT_ENRICH is off),
    record the run for `status`, and return how many papers gained an arXiv record.

    A failing API is logged and recorded, never raised: the ingest it follows has stored its
    papers already, and they are tried again after the next one.
    """
    if not settings.enrich:
        return 0
    last = (await asyncio.to_thread(ledger.source_runs, engine)).get(RUN_NAME)
    if last is not None and last.error and now < last.last_run_at + pause_after(last.failures):
        log.debug("arXiv lookups: paused after %d failed runs", last.failures)
        return 0
    done = await unless_stopped(enrich_waiting(engine, settings, now=now), halt)
    if done is None:
        log.info("arXiv lookups: stopped before they finished")
        return 0
    found = done.recorded
    if done.busy:
        log.info("arXiv lookups: another digestbot process is running them; skipped")
        return 0
    if not done.tried and not done.error:
        return 0  # nothing waited: the last real run stays what `status` shows
    await asyncio.to_thread(
        ledger.record_source_run, engine, RUN_NAME, now=now, new=found.adopted, error=done.error
    )
    log.info(
        "arXiv lookups: %d looked up in %d requests: %d found, %d stored elsewhere, "
        "%d not found; %d waiting",
        done.tried,
        done.requests,
        found.adopted,
        found.elsewhere,
        found.not_found,
        done.waiting,
    )
    if done.error:
        log.warning(
            "arXiv lookups stopped early (tried again after the next ingest): %s", done.error
        )
    return found.adopted
