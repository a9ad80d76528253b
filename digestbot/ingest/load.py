"""Ingest stage: read a saved listing or fetch a source and store its papers; look the
papers known only by title up on arXiv."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import httpx
from sqlalchemy import Engine

from digestbot.ingest import enrichstore, papers, read_listing
from digestbot.ingest.enrich import Choice, adoption
from digestbot.ingest.fetch import FetchedListing, SourceSpec, fetch_source
from digestbot.ingest.http import MAX_DOCUMENT_BYTES, OnRetry, Sleep, make_client
from digestbot.ingest.lookup import Api, Lookup, fetch_ids, look_up
from digestbot.models import Listing
from digestbot.settings import Settings
from digestbot.store.lock import lookup_lock


def ingest_path(
    engine: Engine,
    path: Path,
    *,
    now: datetime,
    year: int | None = None,
    include_replacements: bool = False,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> papers.IngestResult:
    """Parse the listing at `path` (any supported format) and store it in one transaction."""
    listing = read_listing(
        path,
        today=now.date(),
        year=year,
        include_replacements=include_replacements,
        max_bytes=max_bytes,
    )
    return papers.ingest(engine, listing, now=now)


async def ingest_source(
    engine: Engine,
    settings: Settings,
    spec: SourceSpec,
    *,
    now: datetime,
    day: date | None = None,
    sleep: Sleep = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> papers.IngestResult:
    """Fetch one source and store what it lists; nothing is written if any step fails."""
    fetched = await fetch_listing(
        engine, settings, spec, now=now, day=day, sleep=sleep, on_retry=on_retry
    )
    return await store_fetched(engine, fetched, now=now)


async def fetch_listing(
    engine: Engine,
    settings: Settings,
    spec: SourceSpec,
    *,
    now: datetime,
    day: date | None = None,
    sleep: Sleep = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> FetchedListing:
    """Fetch and parse one source, writing nothing: safe to cancel at any point."""
    async with make_client(settings.http_policy) as client:
        return await fetch_source(
            spec,
            client=client,
            endpoints=settings.endpoints,
            policy=settings.http_policy,
            day=day or now.date(),
            known=lambda url: papers.stored_validators(engine, url),
            page_delay=settings.arxiv_api_delay,
            sleep=sleep,
            on_retry=on_retry,
        )


async def store_fetched(
    engine: Engine, fetched: FetchedListing, *, now: datetime
) -> papers.IngestResult:
    """Store a fetched listing's papers and its validators in one transaction."""
    if fetched.listing is None:
        return papers.IngestResult(fetched.url, 0, 0, (), not_modified=True)
    found = fetched.validators
    keep = (fetched.url, found) if found and (found.etag or found.last_modified) else None
    # In a thread: the daemon's event loop runs other jobs (and SMTP) while this one writes.
    return await asyncio.to_thread(papers.ingest, engine, fetched.listing, now=now, validators=keep)


@dataclass(frozen=True)
class Enriched:
    """How an enrichment run went: papers settled and what became of them, the requests it
    made, the papers still waiting, and the error that ended it early."""

    tried: int
    recorded: enrichstore.Recorded
    requests: int
    waiting: int
    error: str | None
    busy: bool = False  # another process was looking papers up: this one did nothing


async def enrich_waiting(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    limit: int | None = None,
    sleep: Sleep = asyncio.sleep,
    on_choice: Callable[[Choice], None] | None = None,
) -> Enriched:
    """Look the papers known only by title up on the arXiv API (at most `limit`), and
    store what was found; a failing API leaves them waiting for the next run."""
    retry = settings.enrich_retry_days
    sought = await asyncio.to_thread(
        enrichstore.waiting, engine, now=now, retry_days=retry, limit=limit
    )
    run = Lookup()
    with lookup_lock(engine) as mine:
        if sought and mine:
            async with make_client(settings.http_policy) as client:
                run = await look_up(_api(client, settings, sleep), sought, on_choice=on_choice)
    recorded = await asyncio.to_thread(enrichstore.record, engine, run.choices, now=now)
    left = await asyncio.to_thread(enrichstore.waiting_count, engine, now=now, retry_days=retry)
    return Enriched(len(run.choices), recorded, run.requests, left, run.error, not mine)


async def store_by_ids(
    engine: Engine, settings: Settings, ids: Sequence[str], *, sleep: Sleep = asyncio.sleep
) -> set[str]:
    """Fetch the arXiv records of `ids` and store them as papers first seen when arXiv
    published them (so no digest takes them as new); the ids arXiv has, stored now."""
    async with make_client(settings.http_policy) as client:
        found = await fetch_ids(_api(client, settings, sleep), ids)
    for paper in found:
        day = paper.published or date(1991, 8, 14)  # arXiv's first day, for a record without one
        seen = datetime.combine(day, datetime.min.time(), tzinfo=UTC)
        listing = Listing("arXiv API (like: seeds)", (adoption(paper),))
        await asyncio.to_thread(papers.ingest, engine, listing, now=seen)
    return {paper.arxiv_id for paper in found if paper.arxiv_id}


def _api(client: httpx.AsyncClient, settings: Settings, sleep: Sleep) -> Api:
    """The arXiv API as the settings name it, paced as arXiv asks."""
    policy, delay = settings.http_policy, settings.arxiv_api_delay
    return Api(client, settings.arxiv_api_base_url, policy, delay, sleep)
