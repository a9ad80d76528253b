"""CLI command `enrich`: look papers known only by title up on the arXiv API; also run
after `ingest`, and the fetch of `like:` seeds before a sync."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from digestbot.cli.common import app, err, friendly, load_settings, now_utc, open_engine, out
from digestbot.compose.words import plural
from digestbot.errors import DigestbotError, SourceError
from digestbot.ingest.enrichstore import RUN_NAME, waiting_count
from digestbot.ingest.load import Enriched, enrich_waiting, store_by_ids
from digestbot.ingest.textnorm import safe_text
from digestbot.rules.likestore import SeedBook, unstored_ids
from digestbot.rules.subscriptions import SubscriptionsFile, load_subscriptions
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
    API failed (the papers not looked up wait for the next run) or another digestbot process
    is looking papers up."""
    settings = load_settings()
    with open_engine(settings) as engine:
        done = run_enrichment(engine, settings, now=now_utc(), limit=limit)
    if done.busy:
        raise SourceError(
            "another digestbot process is looking papers up on arXiv",
            "arXiv asks for one request at a time: run this again when it has finished",
        )
    if done.error:
        raise SourceError(
            f"arXiv lookups stopped: {done.error}",
            f"{plural(done.waiting, 'paper')} still waiting; run `digestbot enrich` again later",
        )


def run_enrichment(
    engine: Engine, settings: Settings, *, now: datetime, limit: int | None = None
) -> Enriched:
    """Look the waiting papers up, print how it went and record the run for `status` (a run
    with nothing to look up is not recorded, so `status` keeps the last real one)."""
    count = waiting_count(engine, now=now, retry_days=settings.enrich_retry_days)
    if count and err.is_terminal:
        err.print(
            f"Looking {plural(min(count, limit or count), 'paper')} known only by title up on"
            f" arXiv, one request every {settings.arxiv_api_delay:g} s…",
            markup=False,
        )
    done = asyncio.run(enrich_waiting(engine, settings, now=now, limit=limit))
    if done.busy:
        return done
    if done.tried or done.error:
        adopted = done.recorded.adopted
        ledger.record_source_run(engine, RUN_NAME, now=now, new=adopted, error=done.error)
    if done.tried or not done.error:  # a run that settled nothing has only its error to say
        out.print(describe(done, settings.enrich_retry_days), markup=False)
    return done


def enrich_after_ingest(engine: Engine, settings: Settings, *, now: datetime, skip: bool) -> None:
    """After `ingest`: look the waiting papers up unless skipped or off (then say how many
    wait); a failing API is a warning, never a failed ingest."""
    if skip or not settings.enrich:
        count = waiting_count(engine, now=now, retry_days=settings.enrich_retry_days)
        if count:
            out.print(
                f"{plural(count, 'paper')} known only by title waiting for an arXiv lookup"
                " (`digestbot enrich`).",
                markup=False,
            )
        return
    if not waiting_count(engine, now=now, retry_days=settings.enrich_retry_days):
        return
    done = run_enrichment(engine, settings, now=now)
    if done.busy:
        out.print(
            "arXiv lookups: another digestbot process is running them; the new papers wait"
            " for it or the next ingest.",
            markup=False,
        )
    elif done.error:
        err.print(
            f"Warning: arXiv lookups stopped: {safe_text(done.error)};"
            f" {plural(done.waiting, 'paper')} still waiting (for the next ingest or"
            " `digestbot enrich`)",
            markup=False,
        )


def describe(done: Enriched, retry_days: int) -> str:
    """One line on an enrichment run: what was found of the papers looked up."""
    if not done.tried:
        return f"arXiv lookups: nothing to look up ({plural(done.waiting, 'paper')} waiting)"
    found = done.recorded
    parts = [f"{found.adopted} found"]
    if found.elsewhere:
        parts.append(f"{found.elsewhere} already stored under their arXiv id")
    if found.not_found:
        parts.append(f"{found.not_found} not found (tried again in {plural(retry_days, 'day')})")
    return (
        f"arXiv lookups: {plural(done.tried, 'paper')} looked up in "
        f"{plural(done.requests, 'request')}: {', '.join(parts)}; {done.waiting} waiting"
    )


def fetch_seeds(engine: Engine, settings: Settings, path: Path) -> None:
    """Before a sync: fetch from arXiv the `like:` seeds given as arXiv ids that no stored
    paper has, and store them (as papers first seen when arXiv published them, so no digest
    takes them as new). Skipped with lookups off; a failure is a warning, and the sync then
    reports each id it still lacks."""
    if not settings.enrich:
        return
    try:
        spec = load_subscriptions(path)
    except DigestbotError:
        return  # the checked load that follows reports every problem
    rules = [rule for sub in spec.subscribers for rule in spec.rules_of(sub)]
    wanted = unstored_ids(SeedBook(engine), rules)
    if not wanted:
        return
    try:
        found = asyncio.run(store_by_ids(engine, settings, wanted))
    except DigestbotError as exc:
        err.print(
            f"Warning: could not fetch like: seeds from arXiv: {safe_text(str(exc))}", markup=False
        )
        return
    missing = sorted(set(wanted) - found)
    lacks = f"; arXiv has no {', '.join(missing)}" if missing else ""
    out.print(f"Fetched {plural(len(found), 'like: seed')} from arXiv{lacks}", markup=False)


def note_unstored_seeds(spec: SubscriptionsFile, book: SeedBook) -> None:
    """For `validate`: say which `like:` seeds are arXiv ids not stored yet, that the next
    sync fetches (only then is an id arXiv lacks an error)."""
    rules = [rule for sub in spec.subscribers for rule in spec.rules_of(sub)]
    for wanted in unstored_ids(book, rules):
        out.print(
            f"Note: like: seed {wanted} is not stored yet; `digestbot subscriptions sync`"
            " fetches it from arXiv",
            markup=False,
        )
