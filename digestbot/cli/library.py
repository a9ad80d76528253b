"""CLI commands over papers and subscriptions: demo, ingest, subscriptions."""

from __future__ import annotations

import asyncio
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy import Engine

from digestbot import service
from digestbot.cli import config, folderview
from digestbot.cli.common import (
    app,
    err,
    friendly,
    load_settings,
    now_utc,
    open_engine,
    out,
    print_left_out,
    print_outcomes,
    print_summary,
    sqlite_file,
    subscriptions_app,
)
from digestbot.cli.enriching import enrich_after_ingest, fetch_seeds, note_unstored_seeds
from digestbot.compose.words import plural
from digestbot.errors import ConfigError, DigestbotError
from digestbot.ingest import papers
from digestbot.ingest.fetch import SourceSpec
from digestbot.ingest.links import web_url
from digestbot.ingest.load import ingest_path, ingest_source
from digestbot.ingest.textnorm import safe_text
from digestbot.resources import bundled_path
from digestbot.rules.likestore import SeedBook
from digestbot.rules.subscribers import listed_but_suppressed, sync_subscriptions
from digestbot.rules.subscriptions import SubscriptionsFile, load_subscriptions
from digestbot.schedule import ledger
from digestbot.settings import Settings, given_settings

DEMO_FOLDER = Path("digestbot-demo")


@app.command(short_help="Try it on sample papers, in ./digestbot-demo/.")
@friendly
def demo() -> None:
    """Ingest the bundled samples, load the example subscriptions and write the digests to
    ./digestbot-demo/; reads no settings and never touches a real setup."""
    # A demo run in a configured folder must not mail or unsubscribe real people, so it
    # ignores the environment and `.env` and keeps its own database and outbox.
    DEMO_FOLDER.mkdir(exist_ok=True)
    settings = given_settings(
        database_url=f"sqlite:///{DEMO_FOLDER / 'digestbot.db'}",
        outbox_dir=DEMO_FOLDER / "outbox",
        transport="file",
    )
    out.print(f"Demo folder: ./{DEMO_FOLDER}/ (its own database and outbox; nothing is mailed)")
    now = now_utc()
    with open_engine(settings, create=True) as engine:
        for sample in ("sample_listing.txt", "sample_daily_papers.json"):
            result = ingest_path(
                engine, bundled_path(sample), now=now, max_bytes=settings.http_policy.max_bytes
            )
            out.print(f"Ingested {sample}: {result.new} new, {result.known} already known.")
        spec = load_subscriptions(bundled_path("subscriptions.example.yaml"))
        sync_subscriptions(engine, spec, now=now)
        outcomes, report = asyncio.run(service.send_now(engine, settings, now=now))
    print_outcomes(outcomes)
    print_summary(report)
    print_left_out(outcomes, settings.carry_over_days)


@app.command(short_help="Ingest a saved listing, a URL or a source.")
@friendly
def ingest(
    target: Annotated[str | None, typer.Argument(metavar="TARGET", hidden=True)] = None,
    source: Annotated[
        SourceKindOption | None,
        typer.Option(
            metavar="NAME", help="Fetch a source instead: hf, arxiv, arxiv-query or feed."
        ),
    ] = None,
    day: Annotated[
        datetime | None,
        typer.Option("--date", metavar="DAY", help="Day of the HF daily papers (default today)."),
    ] = None,
    category: Annotated[
        list[str] | None,
        typer.Option(metavar="CATEGORY", help="arXiv category such as cs.CL (repeatable)."),
    ] = None,
    query: Annotated[
        str | None, typer.Option(metavar="QUERY", help="arXiv API search_query.")
    ] = None,
    year: Annotated[
        int | None, typer.Option(metavar="YEAR", help="Year of a saved page whose header omits it.")
    ] = None,
    replacements: Annotated[
        bool, typer.Option("--replacements", help="Keep arXiv 'replace' announcements too.")
    ] = False,
    configured: Annotated[
        bool, typer.Option("--all", help="Every source in the subscriptions file's `sources:`.")
    ] = False,
    no_enrich: Annotated[
        bool, typer.Option("--no-enrich", help="Skip the arXiv lookups of title-only papers.")
    ] = False,
) -> None:
    """Ingest TARGET (a saved listing: text, HF JSON or feed; or a URL) or a --source.

    Prints new, already known and skipped counts. Every source is tried even when one fails;
    the exit status is 1 if any failed. Then papers known only by title are looked up on
    arXiv (see `digestbot enrich`), unless --no-enrich or DIGESTBOT_ENRICH=false; a failing
    arXiv API does not change the exit status.
    """
    settings = load_settings()
    now = now_utc()
    specs = _ingest_specs(settings, target, source, category, query, replacements, configured)
    failed: list[SourceSpec] = []
    with open_engine(settings, create=True) as engine:
        if isinstance(specs, Path):
            result = ingest_path(
                engine,
                specs,
                now=now,
                year=year,
                include_replacements=replacements,
                max_bytes=settings.http_policy.max_bytes,
            )
            _print_ingest(result)
        else:
            on = day.date() if day else None
            failed = [
                spec for spec in specs if not _ingest_one(engine, settings, spec, now=now, day=on)
            ]
        enrich_after_ingest(engine, settings, now=now, skip=no_enrich)
    if failed:
        raise typer.Exit(1)


def _ingest_one(
    engine: Engine, settings: Settings, spec: SourceSpec, *, now: datetime, day: date | None
) -> bool:
    """Ingest one source, print how it went and record it as the daemon does (for
    `status`); whether it succeeded."""
    if spec.kind == "folder":
        return folderview.ingest_folder_source(engine, settings, spec, now=now, show=_print_ingest)
    try:
        result = asyncio.run(
            ingest_source(engine, settings, spec, now=now, day=day, on_retry=_say_retry)
        )
    except DigestbotError as exc:
        ledger.record_source_run(engine, spec.name, now=now, error=str(exc))
        for line in str(exc).splitlines():
            err.print(f"Error: {line}", markup=False)
        return False
    ledger.record_source_run(engine, spec.name, now=now, new=result.new)
    _print_ingest(result)
    return True


def _say_retry(url: str, wait: float, retry: int, retries: int) -> None:
    """On a terminal, say that a fetch is being retried (a cron job's mail stays quiet)."""
    if err.is_terminal:
        err.print(
            f"{safe_text(url)}: retrying in {round(wait, 1):g} s ({retry}/{retries})",
            markup=False,
        )


class SourceKindOption(StrEnum):
    hf = "hf"
    arxiv = "arxiv"
    arxiv_query = "arxiv-query"
    feed = "feed"


def _ingest_specs(
    settings: Settings,
    target: str | None,
    source: SourceKindOption | None,
    categories: list[str] | None,
    query: str | None,
    replacements: bool,
    configured: bool,
) -> list[SourceSpec] | Path:
    """What to fetch, or the file to read."""
    if configured:
        spec = load_subscriptions(settings.subscriptions)
        if not spec.sources:
            raise ConfigError(
                f"{settings.subscriptions} has no `sources:` section", "add one (see README)"
            )
        return [s.spec() for s in spec.sources]
    if source is None and target and web_url(target):
        source = SourceKindOption.feed
    elif source is None and target and "://" in target:
        raise ConfigError(
            f"{target}: digestbot fetches only http:// and https:// URLs",
            "give an http(s) URL, or save the listing and give the file",
        )
    if source is None:
        if not target:
            raise ConfigError("nothing to ingest", "give a file, a URL, --source or --all")
        return Path(target)
    return [
        SourceSpec(
            kind=source.value,
            categories=tuple(categories or ()),
            query=query,
            url=target,
            include_replacements=replacements,
        )
    ]


def _print_ingest(result: papers.IngestResult) -> None:
    for warning in result.skipped:
        err.print(f"Warning: skipped {safe_text(warning)}", markup=False)
    for note in result.trimmed:
        err.print(f"Warning: {safe_text(note)}", markup=False)
    for note in result.notes:
        err.print(f"Note: {safe_text(note)}", markup=False)
    source = safe_text(result.source)
    if result.not_modified:
        out.print(f"{source}: not modified since the last fetch", markup=False)
        return
    out.print(
        f"{source}: {result.new} new, {result.known} already known, {len(result.skipped)} skipped",
        markup=False,
    )


@subscriptions_app.command("validate")
@friendly
def subscriptions_validate(
    path: Annotated[Path | None, typer.Argument(metavar="FILE", hidden=True)] = None,
) -> None:
    """Check the subscriptions FILE (default: DIGESTBOT_SUBSCRIPTIONS); report every problem
    as file:line:column, and warn of each address in it that unsubscribed."""
    settings = load_settings()
    target = path or settings.subscriptions
    path_of_db = sqlite_file(settings.database_url)
    if path_of_db is not None and not path_of_db.exists():
        spec = load_subscriptions(target, check_folders=True)  # no papers to check seeds by
    else:
        # Inside: the seed book reads the database while the file is checked.
        with open_engine(settings) as engine:
            seeds = SeedBook(engine)
            # With lookups on, sync fetches unstored ids: validate says so, not failing.
            check = None if settings.enrich else seeds.problem
            spec = load_subscriptions(target, check_folders=True, check_seed=check)
            if settings.enrich:
                note_unstored_seeds(spec, seeds)
    _warn_nowhere(spec)
    _warn_suppressed(settings, spec)
    rules = sum(len(s.rules) for s in spec.subscribers)
    counted = f"{plural(len(spec.subscribers), 'subscriber')}, {plural(rules, 'rule')}"
    out.print(f"{target}: OK, {counted}", markup=False)


@subscriptions_app.command("sync")
@friendly
def subscriptions_sync(
    path: Annotated[Path | None, typer.Argument(metavar="FILE", hidden=True)] = None,
) -> None:
    """Load the subscriptions FILE (default: DIGESTBOT_SUBSCRIPTIONS) into the database in one
    transaction. Addresses that unsubscribed stay inactive even while the file lists them;
    each gets a warning."""
    settings = load_settings()
    with open_engine(settings, create=True) as engine:
        fetch_seeds(engine, settings, path or settings.subscriptions)
        seeds = SeedBook(engine)
        spec = load_subscriptions(path or settings.subscriptions, check_seed=seeds.problem)
        _warn_nowhere(spec)
        result = sync_subscriptions(engine, spec, now=now_utc())
    for held in result.suppressed:
        err.print(f"Warning: {held.warning()}", markup=False)
    out.print(
        f"{len(result.added)} added, {len(result.changed)} changed, "
        f"{len(result.reactivated)} reactivated, {len(result.deactivated)} deactivated, "
        f"{len(result.unchanged)} unchanged"
        + (f", {len(result.suppressed)} kept unsubscribed" if result.suppressed else "")
    )


def _warn_nowhere(spec: SubscriptionsFile) -> None:
    for line in config.nowhere_addresses(s.email for s in spec.subscribers):
        err.print(f"Warning: {line}", markup=False)


def _warn_suppressed(settings: Settings, spec: SubscriptionsFile) -> None:
    """Warn of each listed address that unsubscribed, when there is a database to ask; a
    file can be checked before any database exists."""
    path = sqlite_file(settings.database_url)
    if path is not None and not path.exists():
        return
    with open_engine(settings) as engine:
        held = listed_but_suppressed(engine, spec)
    for one in held:
        err.print(f"Warning: {one.warning()}", markup=False)
