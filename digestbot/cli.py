"""CLI: thin typer commands over the library; the only place that prints errors."""

from __future__ import annotations

import asyncio
import functools
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.progress import Progress
from rich.table import Table
from sqlalchemy import Engine

from digestbot import outbox, papers, scheduler, service, statusview
from digestbot.db import make_engine
from digestbot.delivery import Report
from digestbot.errors import ConfigError, DigestbotError
from digestbot.models import Paper
from digestbot.resources import bundled_path
from digestbot.settings import Settings
from digestbot.sources.fetch import SourceSpec
from digestbot.sources.links import web_url
from digestbot.subscribers import sync_subscriptions
from digestbot.subscriptions import load_subscriptions
from digestbot.yamlfile import format_path

app = typer.Typer(
    help="digestbot: email digests of new research papers, matched against your rules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subscriptions_app = typer.Typer(help="Check and load the subscriptions file.", no_args_is_help=True)
papers_app = typer.Typer(help="Look at the papers digestbot has ingested.", no_args_is_help=True)
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(papers_app, name="papers")

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

P = ParamSpec("P")
R = TypeVar("R")


def friendly(command: Callable[P, R]) -> Callable[P, R]:
    """Turn DigestbotError into `Error: …` on stderr and exit 1, sqlite-utils style."""

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return command(*args, **kwargs)
        except DigestbotError as exc:
            for line in str(exc).splitlines():
                err.print(f"Error: {line}", markup=False)
            raise typer.Exit(1) from None

    return wrapper


def load_settings() -> Settings:
    """Build Settings once, from the environment and `.env`."""
    try:
        return Settings()
    except ValidationError as exc:
        problems = [f"DIGESTBOT_{format_path(e['loc']).upper()}: {e['msg']}" for e in exc.errors()]
        raise ConfigError("; ".join(problems), "fix the environment variable or .env") from None


def _now() -> datetime:
    return datetime.now(UTC)


def _engine(settings: Settings) -> Engine:
    return make_engine(settings.database_url)


@app.command()
@friendly
def demo() -> None:
    """Ingest the bundled sample listings, load the example subscriptions and send digests."""
    settings = load_settings()
    now = _now()
    engine = _engine(settings)
    for sample in ("sample_listing.txt", "sample_daily_papers.json"):
        result = service.ingest_path(engine, bundled_path(sample), now=now)
        out.print(f"Ingested {sample}: {result.new} new, {result.known} already known.")
    spec = load_subscriptions(bundled_path("subscriptions.example.yaml"))
    sync_subscriptions(engine, spec, now=now)
    outcomes, report = asyncio.run(service.send_now(engine, settings, now=now))
    _print_outcomes(outcomes)
    _print_summary(report)


@app.command()
@friendly
def ingest(
    target: Annotated[
        str | None, typer.Argument(help="A saved listing (text, HF JSON or feed) or a URL.")
    ] = None,
    source: Annotated[
        SourceKindOption | None,
        typer.Option(help="Fetch a source instead: hf, arxiv, arxiv-query or feed."),
    ] = None,
    day: Annotated[
        datetime | None, typer.Option("--date", help="Day of the HF daily papers (default today).")
    ] = None,
    category: Annotated[
        list[str] | None, typer.Option(help="arXiv category such as cs.CL (repeatable).")
    ] = None,
    query: Annotated[str | None, typer.Option(help="arXiv API search_query.")] = None,
    year: Annotated[
        int | None, typer.Option(help="Year of a saved page whose header omits it.")
    ] = None,
    replacements: Annotated[
        bool, typer.Option("--replacements", help="Keep arXiv 'replace' announcements too.")
    ] = False,
    configured: Annotated[
        bool, typer.Option("--all", help="Every source in the subscriptions file's `sources:`.")
    ] = False,
) -> None:
    """Ingest a saved listing, a URL, or a source; prints new, already known and skipped counts."""
    settings = load_settings()
    engine = _engine(settings)
    now = _now()
    specs = _ingest_specs(settings, target, source, category, query, replacements, configured)
    if specs is None:
        assert target is not None
        results = [
            service.ingest_path(
                engine, Path(target), now=now, year=year, include_replacements=replacements
            )
        ]
    else:
        on = day.date() if day else None
        results = [
            asyncio.run(service.ingest_source(engine, settings, spec, now=now, day=on))
            for spec in specs
        ]
    for result in results:
        _print_ingest(result)


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
) -> list[SourceSpec] | None:
    """What to fetch; None means `target` is a file to read."""
    if configured:
        spec = load_subscriptions(settings.subscriptions)
        if not spec.sources:
            raise ConfigError(
                f"{settings.subscriptions} has no `sources:` section", "add one (see README)"
            )
        return [s.spec() for s in spec.sources]
    if source is None and target and web_url(target):
        source = SourceKindOption.feed
    if source is None:
        if not target:
            raise ConfigError("nothing to ingest", "give a file, a URL, --source or --all")
        return None
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
        err.print(f"Warning: skipped {warning}", markup=False)
    if result.not_modified:
        out.print(f"{result.source}: not modified since the last fetch", markup=False)
        return
    out.print(
        f"{result.source}: {result.new} new, {result.known} already known, "
        f"{len(result.skipped)} skipped",
        markup=False,
    )


@papers_app.command("list")
@friendly
def papers_list(
    since: Annotated[
        datetime | None, typer.Option(help="Only papers first seen on or after this date.")
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List ingested papers, newest first."""
    settings = load_settings()
    start = None if since is None else since.replace(tzinfo=since.tzinfo or UTC)
    rows = papers.papers_seen_since(
        _engine(settings), None if start is None else start - timedelta(microseconds=1)
    )
    if as_json:
        out.print_json(json.dumps([_paper_json(p) for p in rows], ensure_ascii=False))
        return
    table = Table("first seen", "published", "upvotes", "title", "categories", "sources")
    for p in rows:
        link = p.page()
        table.add_row(
            p.first_seen.strftime("%Y-%m-%d %H:%M"),
            p.published.isoformat() if p.published else "",
            "" if p.upvotes is None else str(p.upvotes),
            p.title + (f"\n{link}" if link else ""),
            " ".join(p.categories),
            " ".join(p.sources),
        )
    out.print(table)


def _paper_json(p: Paper) -> dict[str, Any]:
    return {
        "id": p.id,
        "arxiv_id": p.arxiv_id,
        "title": p.title,
        "authors": list(p.authors),
        "author_count": p.author_count,
        "organisation": p.organisation,
        "published": p.published.isoformat() if p.published else None,
        "first_seen": p.first_seen.isoformat(),
        "upvotes": p.upvotes,
        "comments": p.comments,
        "categories": list(p.categories),
        "links": dict(p.links),
        "sources": list(p.sources),
    }


@subscriptions_app.command("validate")
@friendly
def subscriptions_validate(
    path: Annotated[Path | None, typer.Argument(help="Default: DIGESTBOT_SUBSCRIPTIONS.")] = None,
) -> None:
    """Check the subscriptions file and report every problem as file:line:column."""
    settings = load_settings()
    target = path or settings.subscriptions
    spec = load_subscriptions(target)
    rules = sum(len(s.rules) for s in spec.subscribers)
    out.print(f"{target}: OK, {len(spec.subscribers)} subscribers, {rules} rules", markup=False)


@subscriptions_app.command("sync")
@friendly
def subscriptions_sync(
    path: Annotated[Path | None, typer.Argument(help="Default: DIGESTBOT_SUBSCRIPTIONS.")] = None,
) -> None:
    """Load the subscriptions file into the database in one transaction."""
    settings = load_settings()
    spec = load_subscriptions(path or settings.subscriptions)
    result = sync_subscriptions(_engine(settings), spec, now=_now())
    out.print(
        f"{len(result.added)} added, {len(result.changed)} changed, "
        f"{len(result.reactivated)} reactivated, {len(result.deactivated)} deactivated, "
        f"{len(result.unchanged)} unchanged"
    )


@app.command("send-now")
@friendly
def send_now(
    to: Annotated[
        list[str] | None, typer.Option("--to", help="Only this subscriber (repeatable).")
    ] = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Show what would be sent; send and record nothing.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    resend_unknown: Annotated[
        bool,
        typer.Option(
            "--resend-unknown",
            help="Also resend emails whose delivery is unknown (same Message-ID).",
        ),
    ] = False,
) -> None:
    """Send every subscriber the papers they have not had yet, now."""
    settings = load_settings()
    engine = _engine(settings)
    now = _now()
    emails = _normalised(to or [])
    if resend_unknown and not dry_run:
        count = outbox.resend_unknown(engine, now=now)
        err.print(f"{count} email(s) of unknown delivery queued again.")
    if dry_run:
        digests = service.plan_digests(engine, settings, now=now, emails=emails)
        plan = [_digest_json(d) for d in digests]
        if as_json:
            out.print_json(json.dumps(plan, ensure_ascii=False))
        else:
            for entry in plan:
                out.print(f"{entry['email']}: {len(entry['papers'])} papers", markup=False)
        return
    with _progress(enabled=not as_json) as tick:
        outcomes, report = asyncio.run(
            service.send_now(engine, settings, now=now, emails=emails, progress=tick)
        )
    if as_json:
        out.print_json(json.dumps([o.__dict__ for o in outcomes], ensure_ascii=False))
    else:
        _print_outcomes(outcomes)
        _print_summary(report)
    if report.count("failed") or report.count("unknown"):
        raise typer.Exit(1)


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on a terminal; silent when output is piped."""
    if not (enabled and err.is_terminal):
        yield lambda _status: None
        return
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("sending", total=None)
        yield lambda _status: bar.advance(task)


def _print_summary(report: Report) -> None:
    counts = ", ".join(
        f"{report.count(s)} {label}"
        for s, label in (
            ("sent", "sent"),
            ("retry", "retrying"),
            ("failed", "failed"),
            ("unknown", "unknown"),
        )
    )
    out.print(f"Summary: {counts}.")
    if report.recovered:
        out.print(
            f"{report.recovered} email(s) were interrupted mid-send by an earlier run and are "
            "now `unknown`: see `digestbot status`."
        )


@app.command()
@friendly
def status() -> None:
    """Show the scheduler and its jobs, the last ingest of each source, and the outbox."""
    settings = load_settings()
    for piece in statusview.tables(_engine(settings)):
        if isinstance(piece, str):
            out.print(piece, markup=False)
        else:
            out.print(piece)


@app.command()
@friendly
def run() -> None:
    """Run the bot: ingest each source on its schedule, send each digest at the subscriber's
    local time and alerts right after the ingest that found them; stop with SIGTERM or Ctrl-C."""
    settings = load_settings()
    engine = _engine(settings)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    logging.getLogger("apscheduler").setLevel(logging.WARNING)  # its per-run lines drown ours
    asyncio.run(scheduler.Daemon(settings, engine).run())


def _normalised(emails: Sequence[str]) -> list[str]:
    from digestbot.addresses import normalise_address

    try:
        return [normalise_address(e) for e in emails]
    except ValueError as exc:
        raise ConfigError(f"--to: {exc}", "give a subscriber's email address") from None


def _digest_json(digest: Any) -> dict[str, Any]:
    return {
        "email": digest.subscriber.email,
        "papers": [
            {
                "id": item.paper.id,
                "title": item.paper.title,
                "score": item.match.score,
                "matched": list(item.match.terms),
            }
            for item in digest.items
        ],
    }


def _print_outcomes(outcomes: Sequence[service.Outcome]) -> None:
    if not any(o.status != "nothing new" for o in outcomes):
        out.print("Nothing new to send: every subscriber already has every matching paper.")
        return
    table = Table("subscriber", "papers matched", "status")
    table.add_column("delivered to", overflow="fold")
    for o in outcomes:
        table.add_row(o.email, str(o.papers), o.status, o.where)
    out.print(table)


@app.command()
@friendly
def preview(
    email: Annotated[str, typer.Argument(metavar="EMAIL", help="The subscriber's address.")],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out", help="Write FILE: the whole message if it ends in .eml, else the HTML."
        ),
    ] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open the HTML in a browser.")] = False,
) -> None:
    """Show a subscriber's next digest exactly as send-now would send it, without sending.

    Prints the subject and the text part. --out FILE.eml writes the whole message, any other
    --out FILE the HTML part; --open opens the HTML in a browser. Nothing is recorded."""
    import webbrowser
    from email import message_from_bytes, policy
    from tempfile import NamedTemporaryFile

    settings = load_settings()
    (address,) = _normalised([email])
    raw = service.preview(_engine(settings), settings, address, now=_now())
    if raw is None:
        out.print(f"Nothing new for {address}: send-now would send nothing.", markup=False)
        return
    message = message_from_bytes(raw, policy=policy.default)
    html = _part(message, "html")
    if out_file is not None:
        eml = out_file.suffix.lower() == ".eml"
        _write(out_file, raw if eml else html.encode("utf-8"))
        err.print(f"Wrote {'the message' if eml else 'the HTML part'} to {out_file}", markup=False)
    else:
        out.print(f"Subject: {message['Subject']}\n\n{_part(message, 'plain')}", markup=False)
    if open_it:
        target = out_file if out_file and out_file.suffix.lower() in (".html", ".htm") else None
        if target is None:
            with NamedTemporaryFile("wb", suffix=".html", prefix="digestbot-", delete=False) as f:
                f.write(html.encode("utf-8"))
            target = Path(f.name)
        webbrowser.open(target.resolve().as_uri())


def _part(message: Any, subtype: str) -> str:
    body = message.get_body((subtype,))
    return "" if body is None else str(body.get_content()).replace("\r\n", "\n")


def _write(path: Path, data: bytes) -> None:
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", "check the path") from None


def main() -> None:
    """Console entry point."""
    app()
