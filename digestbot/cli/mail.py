"""CLI commands over delivery: send-now, preview, status and the `run` daemon."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from email import message_from_bytes, policy
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.progress import Progress

from digestbot import service
from digestbot.cli import sendview, statusview
from digestbot.cli.common import (
    app,
    backend,
    err,
    friendly,
    load_settings,
    normalised_addresses,
    now_utc,
    open_engine,
    out,
    print_left_out,
    print_outcomes,
    print_summary,
    say_where_emails_go,
)
from digestbot.delivery import outbox
from digestbot.delivery.transport import TransportUnavailable
from digestbot.errors import ConfigError
from digestbot.ingest.textnorm import safe_text
from digestbot.schedule import daemon
from digestbot.settings import LogLevel
from digestbot.store.failures import check_integrity
from digestbot.web import create_app, server


@app.command("send-now", short_help="Send every subscriber their new papers, now.")
@friendly
def send_now(
    to: Annotated[
        list[str] | None,
        typer.Option("--to", metavar="EMAIL", help="Only this subscriber (repeatable)."),
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
    # A dry run checks what a send would: it must not pass where the send will fail.
    settings = load_settings(sends=True)
    now = now_utc()
    emails = normalised_addresses(to or [])
    with open_engine(settings) as engine:
        if not dry_run:
            say_where_emails_go(settings)
        if resend_unknown and not dry_run:
            count = outbox.resend_unknown(engine, now=now)
            err.print(f"{count} email(s) of unknown delivery queued again.")
        if dry_run:
            digests = service.plan_digests(engine, settings, now=now, emails=emails)
            waiting = service.queued(engine, [d.subscriber for d in digests])
            sendview.print_plan(digests, waiting, now=now, as_json=as_json)
            return
        try:
            with _progress(enabled=not as_json) as tick:
                outcomes, report = asyncio.run(
                    service.send_now(
                        engine, settings, now=now, emails=emails, progress=tick, details=as_json
                    )
                )
        except TransportUnavailable as exc:
            raise _held_back(exc, outbox.counts_by_status(engine)) from None
        if as_json:
            still = outbox.waiting(engine, [o.subscriber_id for o in outcomes])
    if as_json:
        sendview.print_sent_json(outcomes, _by_subscriber(still))
    else:
        print_outcomes(outcomes)
        print_summary(report)
        print_left_out(outcomes, settings.carry_over_days)
    # Rows an earlier run left interrupted are unknown now: a person must look at them.
    if report.count("failed") or report.count("unknown") or report.recovered:
        raise typer.Exit(1)


def _held_back(exc: TransportUnavailable, counts: Mapping[str, int]) -> TransportUnavailable:
    """`exc`, saying too that nothing is lost: what waits, and when it goes."""
    waiting = counts.get("pending", 0) + counts.get("retry", 0)
    kept = f"{waiting} email(s) stay queued and go out with the next send-now or run"
    return TransportUnavailable(f"{exc.message}; {kept}", exc.hint)


def _by_subscriber(rows: Sequence[outbox.Waiting]) -> dict[int, list[outbox.Waiting]]:
    found: dict[int, list[outbox.Waiting]] = {}
    for row in rows:
        found.setdefault(row.subscriber_id, []).append(row)
    return found


@contextmanager
def _progress(*, enabled: bool) -> Iterator[Callable[[str], None]]:
    """A rich progress bar on a terminal; silent when output is piped."""
    if not (enabled and err.is_terminal):
        yield lambda _status: None
        return
    with Progress(console=err, transient=True) as bar:
        task = bar.add_task("sending", total=None)
        yield lambda _status: bar.advance(task)


@app.command(short_help="Show the scheduler, the sources' last ingests and the outbox.")
@friendly
def status() -> None:
    """Show the scheduler and its jobs, the last ingest of each source, and the outbox."""
    settings = load_settings()
    with open_engine(settings) as engine:
        # A damaged page the tables below never read must not pass for a healthy database.
        check_integrity(engine, settings.database_url)
        pieces = list(
            statusview.tables(
                engine,
                now=now_utc(),
                retry_days=settings.enrich_retry_days,
                lookups_on=settings.enrich,
            )
        )
    for piece in pieces:
        if isinstance(piece, str):
            out.print(piece, markup=False)
        else:
            out.print(piece)


@app.command(short_help="Run the bot: ingest and send on schedule.")
@friendly
def run(
    serve: Annotated[
        bool,
        typer.Option("--serve", help="Also serve readers' links (as `digestbot serve` does)."),
    ] = False,
    host: Annotated[
        str, typer.Option("--host", metavar="ADDRESS", help="With --serve: address to listen on.")
    ] = "127.0.0.1",
    port: Annotated[
        int,
        typer.Option(
            "--port", metavar="PORT", min=1, max=65535, help="With --serve: port to listen on."
        ),
    ] = 8080,
    no_work: Annotated[
        bool,
        typer.Option("--no-work", help="On PostgreSQL: schedule only, leave the work to workers."),
    ] = False,
) -> None:
    """Run the bot: ingest on schedule, send digests at local times and alerts at once.

    It logs to stderr, first what it runs with: database, emails, subscriptions, jobs.

    DIGESTBOT_LOG_LEVEL=debug adds a line for each HTTP request.

    --serve also serves the pages readers' links open, in the same process (see `serve`).

    On PostgreSQL one `run` schedules: digests and alerts become slices of subscribers that
    every `digestbot worker` and every `run` share (a second `run` works, and schedules once
    the first stops); --no-work leaves them to the workers.

    Stop it with SIGTERM or Ctrl-C; the message in flight finishes.
    """
    settings = load_settings(sends=True)
    if serve:
        server.require_public_url(settings)
    if no_work and backend(settings.database_url) != "postgresql":
        raise ConfigError(
            "--no-work needs PostgreSQL: on SQLite `run` does all the work itself",
            "leave --no-work out, or move to PostgreSQL (see `digestbot db copy`)",
        )
    with open_engine(settings) as engine:
        say_where_emails_go(settings)
        start_logging(settings.log_level)
        bot = daemon.Daemon(settings, engine, work=not no_work)
        if not serve:
            asyncio.run(bot.run())
            return
        with server.listen(host, port) as sock:
            site = server.make_server(create_app(settings, engine))
            asyncio.run(server.serve_while(bot.run(), site, sock, stop=bot.stop))


def start_logging(level: LogLevel) -> None:
    """Log to stderr at `level`. Below debug, the libraries' routine lines are left out:
    httpx's line per request, APScheduler's per job run, Alembic's per database open would
    drown the daemon's own."""
    logging.basicConfig(
        level=level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S%z",
    )
    # httpcore's trace of every connection is noise even when debugging: httpx's request
    # lines say what was fetched and how it answered.
    logging.getLogger("httpcore").setLevel(logging.INFO)
    if level != "debug":
        for chatty in ("apscheduler", "alembic", "httpx"):
            logging.getLogger(chatty).setLevel(logging.WARNING)


@app.command(short_help="Show a subscriber's next digest without sending it.")
@friendly
def preview(
    email: Annotated[str, typer.Argument(metavar="EMAIL", hidden=True)],
    out_file: Annotated[
        Path | None,
        typer.Option(
            "--out",
            metavar="FILE",
            help="Write FILE: the whole message if it ends in .eml, else the HTML.",
        ),
    ] = None,
    open_it: Annotated[bool, typer.Option("--open", help="Open the HTML in a browser.")] = False,
) -> None:
    """Show the next digest of the subscriber EMAIL exactly as send-now would send it.

    Prints the subject and the text part. --out FILE.eml writes the whole message, any other
    --out FILE the HTML part; --open opens the HTML in a browser. Nothing is recorded."""
    settings = load_settings()
    (address,) = normalised_addresses([email])
    with open_engine(settings) as engine:
        shown = service.preview(engine, settings, address, now=now_utc())
    if shown.new is None and not shown.queued:
        out.print(f"Nothing new for {address}: send-now would send nothing.", markup=False)
        return
    for row, raw in shown.queued:
        label = sendview.queued_label(row)
        out.print(f"(queued, {label})", markup=False)
        if raw is not None:
            _print_message(raw)
    if shown.new is None:
        out.print(f"Nothing new for {address} beyond the queued email(s).", markup=False)
    elif shown.queued:
        out.print("(new, decided now)", markup=False)
    # The newly decided message, or else the last queued one, is what --out and --open show.
    raw = shown.new or next((m for _, m in reversed(shown.queued) if m is not None), None)
    if shown.new is not None and out_file is None:
        _print_message(shown.new)
    if raw is not None:
        _save_or_open(raw, out_file, open_it=open_it)


def _print_message(raw: bytes) -> None:
    message = message_from_bytes(raw, policy=policy.default)
    text = f"Subject: {message['Subject']}\n\n{_part(message, 'plain')}"
    out.print(safe_text(text, newlines=True), markup=False)


def _save_or_open(raw: bytes, out_file: Path | None, *, open_it: bool) -> None:
    """--out FILE.eml writes the whole message, any other --out FILE the HTML part; --open
    opens the HTML in a browser."""
    import webbrowser
    from tempfile import NamedTemporaryFile

    html = _part(message_from_bytes(raw, policy=policy.default), "html")
    if out_file is not None:
        eml = out_file.suffix.lower() == ".eml"
        _write(out_file, raw if eml else html.encode("utf-8"))
        err.print(f"Wrote {'the message' if eml else 'the HTML part'} to {out_file}", markup=False)
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
