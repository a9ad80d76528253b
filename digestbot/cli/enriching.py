"""CLI command `enrich`: look papers known only by title up on the arXiv API; also run
after `ingest`."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Annotated

import typer
from sqlalchemy import Engine

from digestbot.cli.common import app, err, friendly, load_settings, now_utc, open_engine, out
from digestbot.compose.words import plural
from digestbot.errors import SourceError
from digestbot.ingest.enrichstore import RUN_NAME, waiting_count
from digestbot.ingest.load import Enriched, enrich_waiting
from digestbot.ingest.textnorm import safe_text
from digestbot.schedule import ledger
from digestbot.settings import Settings


@app.command(short_help="Look papers known only by title up on arXiv.")
@friendly
def enrich(
    limit: Annotated[
        int | None,
        typer.Option(min=1, metavar="N", help="Look up at most N papers, newest first."),
    ] = None,
) -> None:
    """Look the papers known only by their title (saved pages, feed items without an arXiv
    id) up on the arXiv API, and give each one found its arXiv id, authors, categories and
    links. One request at a time, DIGESTBOT_ARXIV_API_DELAY seconds apart; a paper arXiv
    had nothing for is tried again after DIGESTBOT_ENRICH_RETRY_DAYS days. Exit 1 when the
    API failed (the papers not looked up wait for the next run)."""
    settings = load_settings()
    with open_engine(settings) as engine:
        done = run_enrichment(engine, settings, now=now_utc(), limit=limit)
    if done and done.error:
        raise SourceError(
            f"arXiv lookups stopped: {done.error}",
            f"{plural(done.waiting, 'paper')} still wait; run `digestbot enrich` again later",
        )


def run_enrichment(
    engine: Engine,
    settings: Settings,
    *,
    now: datetime,
    limit: int | None = None,
    quiet: bool = False,
) -> Enriched | None:
    """Look the waiting papers up, print how it went and record the run for `status`;
    `quiet` says nothing (and does nothing) when no paper waits."""
    count = waiting_count(engine, now=now, retry_days=settings.enrich_retry_days)
    if quiet and not count:
        return None
    if count and err.is_terminal:
        err.print(
            f"Looking {plural(min(count, limit or count), 'paper')} known only by title up on"
            f" arXiv, one request every {settings.arxiv_api_delay:g} s…",
            markup=False,
        )
    done = asyncio.run(enrich_waiting(engine, settings, now=now, limit=limit))
    ledger.record_source_run(engine, RUN_NAME, now=now, new=done.recorded.adopted, error=done.error)
    out.print(describe(done, settings.enrich_retry_days), markup=False)
    return done


def describe(done: Enriched, retry_days: int) -> str:
    """One line on an enrichment run, for the CLI and the daemon's log."""
    if not done.tried and not done.error:
        return f"arXiv lookups: nothing to look up ({plural(done.waiting, 'paper')} waiting)"
    found = done.recorded
    parts = [f"{found.adopted} found"]
    if found.elsewhere:
        parts.append(f"{found.elsewhere} already stored under their arXiv id")
    if found.not_found:
        parts.append(f"{found.not_found} not found (tried again in {plural(retry_days, 'day')})")
    line = (
        f"arXiv lookups: {plural(done.tried, 'paper')} looked up in "
        f"{plural(done.requests, 'request')}: {', '.join(parts)}"
    )
    if done.error:
        line += f"; stopped early: {safe_text(done.error)}"
    return f"{line}; {done.waiting} waiting"
