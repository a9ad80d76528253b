"""CLI commands over what readers asked for: unsubscribe, resubscribe, feedback export and
import."""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer

from digestbot import service
from digestbot.addresses import normalise_address
from digestbot.cli.common import (
    app,
    friendly,
    load_settings,
    now_utc,
    open_engine,
    out,
    show_help_when_bare,
)
from digestbot.compose.words import plural
from digestbot.errors import ConfigError
from digestbot.ingest.textnorm import safe_text
from digestbot.rules import readers
from digestbot.rules.readers import VOTE_FIELDS
from digestbot.rules.subscribers import subscriber_known
from digestbot.rules.voteimport import import_votes

feedback_app = typer.Typer(
    help="Read what readers said of the papers in their digests.",
    callback=show_help_when_bare,
    invoke_without_command=True,
)
app.add_typer(feedback_app, name="feedback")

Email = Annotated[str, typer.Argument(metavar="EMAIL", hidden=True)]


def _address(email: str) -> str:
    try:
        return normalise_address(email)
    except ValueError as exc:
        raise ConfigError(str(exc), "give the reader's email address") from None


@app.command(short_help="Stop all mail to an address, whatever the file says.")
@friendly
def unsubscribe(email: Email) -> None:
    """Put EMAIL on the suppression list: its digests stop, emails queued for it are
    cancelled, and syncing a subscriptions file that still lists it keeps it inactive. An
    address that is not a subscriber goes on the list too. Doing it twice changes nothing."""
    address = _address(email)
    with open_engine(load_settings()) as engine:
        known = subscriber_known(engine, address)
        done = service.unsubscribe(engine, address, now=now_utc(), via="operator")
    if not done.new:
        out.print(f"{address} was already unsubscribed; nothing changed.", markup=False)
        return
    if known:
        cancelled = plural(done.cancelled, "queued email")
        out.print(
            f"Unsubscribed {address}: on the suppression list, no more digests; "
            f"{cancelled} cancelled.",
            markup=False,
        )
    else:
        out.print(
            f"{address} is not a subscriber; it is on the suppression list all the same, so "
            "no subscriptions file can make it one until `digestbot resubscribe` takes it off.",
            markup=False,
        )


@app.command(short_help="Take an address off the suppression list.")
@friendly
def resubscribe(email: Email) -> None:
    """Take EMAIL off the suppression list (only when its reader asked to come back): a
    subscriber that the subscriptions file lists gets digests again. Exit status 1 when the
    address was not on the list."""
    address = _address(email)
    with open_engine(load_settings()) as engine:
        if not service.resubscribe(engine, address, now=now_utc()):
            raise ConfigError(
                f"{address} is not on the suppression list; nothing changed",
                "check the spelling of the address",
            )
        known = subscriber_known(engine, address)
    out.print(f"Resubscribed {address}: off the suppression list.", markup=False)
    if not known:
        out.print(
            "They are not a subscriber: add them to the subscriptions file and run "
            "`digestbot subscriptions sync`.",
            markup=False,
        )


@feedback_app.command("export", short_help="Print every vote readers cast, as CSV or JSON.")
@friendly
def feedback_export(
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """Print every vote readers cast on papers, oldest first, as CSV with a header line
    (email, paper_id, title, vote, voted_at, digest), or with --json as a JSON list."""
    with open_engine(load_settings()) as engine:
        cast = readers.votes(engine)
    rows = [_vote_json(vote) for vote in cast]
    if as_json:
        out.print_json(json.dumps(rows, ensure_ascii=False))
        return
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=VOTE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    out.print(text.getvalue(), markup=False, emoji=False, end="")


def _vote_json(vote: readers.CastVote) -> dict[str, Any]:
    """A vote as plain text fields, cleaned for the terminal; its time in ISO 8601 (UTC)."""
    row = asdict(vote)
    row["voted_at"] = vote.voted_at.isoformat()
    return {key: safe_text(str(row[key])) for key in VOTE_FIELDS}


@feedback_app.command("import", short_help="Store the votes of a file `feedback export` wrote.")
@friendly
def feedback_import(
    file: Annotated[str, typer.Argument(metavar="FILE", hidden=True)],
) -> None:
    """Store the votes in FILE, CSV or JSON as `feedback export` writes them (told apart by
    content; - reads stdin), keeping each row's time and digest. Every row is checked first
    (a subscriber's address, a stored paper's id or arXiv id, up or down, a time with a
    timezone): any bad row and nothing is stored, exit status 1. The latest vote on a paper
    wins: a row older than the stored vote is skipped."""
    source, text = _read(file)
    with open_engine(load_settings()) as engine:
        counts = import_votes(engine, text, source)
    said = [f"{counts.new} new", f"{counts.replaced} replaced"]
    said.append(f"{counts.older} older than the stored vote (kept the stored one)")
    if counts.same:
        said.append(f"{counts.same} already stored")
    out.print(f"Imported {plural(counts.total, 'vote')}: {', '.join(said)}.", markup=False)


def _read(file: str) -> tuple[str, str]:
    """The name to show in errors, and the text of FILE (stdin for -)."""
    if file == "-":
        return "<stdin>", sys.stdin.read()
    try:
        return file, Path(file).read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(
            f"cannot read {file}: {exc}", "give a file `digestbot feedback export` wrote"
        ) from None
