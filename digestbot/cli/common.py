"""CLI plumbing: the typer app, consoles, settings and the `Error: …` wrapper every command uses."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from digestbot import service
from digestbot.cli import config
from digestbot.delivery.send import Report
from digestbot.errors import ConfigError, DigestbotError, SettingsError
from digestbot.rules.yamlfile import format_path
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.failures import store_error
from digestbot.store.migrate import Upgraded

app = typer.Typer(
    help="digestbot: email digests of new research papers, matched against your rules.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
subscriptions_app = typer.Typer(help="Check and load the subscriptions file.", no_args_is_help=True)
papers_app = typer.Typer(help="Look at the papers digestbot has ingested.", no_args_is_help=True)
app.add_typer(subscriptions_app, name="subscriptions")
db_app = typer.Typer(help="Look at and upgrade the database's schema.", no_args_is_help=True)
app.add_typer(papers_app, name="papers")
app.add_typer(db_app, name="db")

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
            fail(exc)
        except MemoryError:
            # Whatever was being built is gone by now, so there is memory left to say so.
            typed = _typed(command.__name__)
            fail(DigestbotError(f"out of memory while running `digestbot {typed}`", _MEMORY_HINT))

    return wrapper


_MEMORY_HINT = (
    "bound what it handles at once (a smaller listing, fewer subscribers per run, fewer "
    "DIGESTBOT_RENDER_PROCESSES) or give digestbot more memory"
)


def fail(exc: DigestbotError) -> NoReturn:
    """Print `exc` as `Error: …` lines on stderr and exit 1."""
    for line in str(exc).splitlines():
        err.print(f"Error: {line}", markup=False)
    raise typer.Exit(1) from None


GROUPS = ("subscriptions", "papers", "db")


def _typed(function: str) -> str:
    """The command a function implements, as typed: `papers_list` is `papers list`,
    `send_now` is `send-now`."""
    words = function.split("_")
    return " ".join(words) if words[0] in GROUPS else "-".join(words)


def load_settings(*, sends: bool = False) -> Settings:
    """Build Settings once, from the environment and `.env`, and check them: every problem
    is one line of one ConfigError. `sends` adds the checks for mailing real readers."""
    given = config.given_names(os.environ)
    problems = config.unknown_names(given) + config.orphans(given)
    try:
        settings = Settings()
    except ValidationError as exc:
        problems += [
            f"DIGESTBOT_{format_path(e['loc']).upper()}: {e['msg']} (fix it in the environment "
            "or .env)"
            for e in exc.errors()
        ]
        raise SettingsError(problems, "fix the environment variable or .env") from None
    if sends:
        problems += config.placeholders(settings)
    if problems:
        raise SettingsError(problems, "fix the environment variable or .env")
    return settings


def say_where_emails_go(settings: Settings) -> None:
    """Tell the user, before anything is sent, where this run's emails go."""
    err.print(config.where_emails_go(settings), markup=False)


def now_utc() -> datetime:
    """The clock, read only here and passed down."""
    return datetime.now(UTC)


@contextmanager
def open_engine(settings: Settings, *, upgrade: bool = True) -> Iterator[Engine]:
    """The database engine of `settings`, its schema upgraded (unless not `upgrade`); its
    connections are closed when the block ends, however it ends (Python 3.13 warns of every
    SQLite connection that is left to the garbage collector). A database failure in the block
    (locked, full, read-only, corrupt) becomes one StoreError line."""
    url, waited = settings.database_url, settings.db_busy_timeout
    engine = make_engine(url, upgrade=upgrade, on_upgrade=say_upgraded, busy_timeout=waited)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise store_error(exc, url, busy_timeout=waited) from None
    finally:
        engine.dispose()


def say_upgraded(done: Upgraded) -> None:
    """Tell the user their database was upgraded (a new one is simply created)."""
    if done.before is not None:
        err.print(
            f"Upgraded the database from revision {done.before} to {done.after}.", markup=False
        )


def normalised_addresses(emails: Sequence[str]) -> list[str]:
    from digestbot.addresses import normalise_address

    try:
        return [normalise_address(e) for e in emails]
    except ValueError as exc:
        raise ConfigError(f"--to: {exc}", "give a subscriber's email address") from None


def print_summary(report: Report) -> None:
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


def print_outcomes(outcomes: Sequence[service.Outcome]) -> None:
    if not any(o.status != "nothing new" for o in outcomes):
        out.print("Nothing new to send: every subscriber already has every matching paper.")
        return
    table = Table("subscriber", "papers matched", "status")
    table.add_column("delivered to", overflow="fold")
    for o in outcomes:
        table.add_row(o.email, str(o.papers), o.status, o.where)
    out.print(table)


def print_left_out(outcomes: Sequence[service.Outcome], carry_days: float) -> None:
    """What becomes of the matching papers max_papers kept out of this send's digests."""
    count = sum(o.left_out for o in outcomes)
    if not count:
        return
    fate = (
        f"they come in the next digests while first seen less than {carry_days:g} days ago"
        if carry_days
        else "they will not be sent (DIGESTBOT_CARRY_OVER_DAYS is 0)"
    )
    out.print(f"{count} matching papers did not fit max_papers: {fate}.", markup=False)
