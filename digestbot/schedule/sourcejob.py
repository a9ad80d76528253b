"""Schedule stage: one scheduled ingest of a source (fetched, or a folder read), logged.

The daemon records the outcome and alerts on new papers; this module only gets the papers
in and says how it went.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine

from digestbot.compose.words import plural
from digestbot.ingest.fetch import SourceSpec
from digestbot.ingest.folder import ingest_folder
from digestbot.ingest.load import fetch_listing, store_fetched
from digestbot.schedule.watch import unless_stopped
from digestbot.settings import Settings

log = logging.getLogger("digestbot.run")


@dataclass(frozen=True)
class Ingested:
    """How a scheduled ingest went: papers new to the store, and what failed if anything
    (a folder source may have both: its other files went in)."""

    new: int = 0
    error: str | None = None
    stopped: bool = False  # halted before anything was written


async def ingest_spec(
    engine: Engine, settings: Settings, spec: SourceSpec, *, now: datetime, halt: asyncio.Event
) -> Ingested:
    """Ingest one source; a DigestbotError stopping the whole source propagates."""
    if spec.kind == "folder":
        return await _read_folder(engine, settings, spec, now=now)
    fetched = await unless_stopped(fetch_listing(engine, settings, spec, now=now), halt)
    if fetched is None:
        log.info("ingest %s: stopped before its fetch finished", spec.name)
        return Ingested(stopped=True)
    result = await store_fetched(engine, fetched, now=now)
    for note in result.trimmed:
        log.warning("ingest %s: %s", spec.name, note)
    log.info(
        "ingest %s: %d new, %d known%s",
        spec.name,
        result.new,
        result.known,
        " (not modified)" if result.not_modified else "",
    )
    return Ingested(new=result.new)


async def _read_folder(
    engine: Engine, settings: Settings, spec: SourceSpec, *, now: datetime
) -> Ingested:
    """Ingest a folder source's new and changed files; each file's problem is logged."""
    # In a thread: reading, hashing and storing files must not stall the event loop.
    result = await asyncio.to_thread(
        ingest_folder,
        engine,
        spec.path or "",
        source=spec.name,
        now=now,
        max_bytes=settings.http_policy.max_bytes,
    )
    for one in result.ingested:
        for note in (*one.trimmed, *(f"skipped {s}" for s in one.skipped)):
            log.warning("ingest %s: %s", spec.name, note)
        log.info("ingest %s: %s: %d new, %d known", spec.name, one.source, one.new, one.known)
    for path in result.waiting:
        log.info("ingest %s: %s was modified just now; the next run reads it", spec.name, path)
    for problem in result.problems:
        log.error("ingest %s: %s", spec.name, problem.reason)
    log.info(
        "ingest %s: %d new, %d known (%s ingested, %d unchanged, %d failed)",
        spec.name,
        result.new,
        result.known,
        plural(len(result.ingested), "file"),
        result.unchanged,
        len(result.problems),
    )
    return Ingested(new=result.new, error=result.error())
