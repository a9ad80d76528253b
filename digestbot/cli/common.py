"""CLI plumbing: the typer app, consoles, settings and the `Error: …` wrapper every command uses."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, NoReturn, ParamSpec, TypeVar

import typer
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table
from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, SQLAlchemyError

from digestbot import service
from digestbot.cli import config
from digestbot.compose.words import plural
from digestbot.delivery.send import Report
from digestbot.errors import ConfigError, DigestbotError, SettingsError, StoreError
from digestbot.rules.yamlfile import format_path
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.failures import store_error
from digestbot.store.migrate import Upgraded

EXIT_CODES = "Exit status: 0 done, 1 failed (an Error: line says why), 2 usage error."
# `-h` as well as `--help` everywhere: child contexts inherit the names.
HELP = {"help_option_names": ["-h", "--help"]}


def show_help_when_bare(ctx: typer.Context) -> None:
    """A group run without a command shows its help (and exits 0)."""
    if ctx.invoked_subcommand is None:
        typer.echo(ctx.get_help())
        raise typer.Exit(0)


def _group(about: str) -> typer.Typer:
    return typer.Typer(help=about, callback=show_help_when_bare, invoke_without_command=True)


# Plain click help, not typer's rich panels: those print a `<bool>` type for every flag and
# the help option. Arguments still get a `<str>` whatever their metavar, so commands hide
# them from the list and name them (TARGET, EMAIL, FILE) in their docstring instead.
app = typer.Typer(
    help="digestbot: email digests of new research papers, matched against your rules.",
    epilog=EXIT_CODES,
    context_settings=HELP,
    invoke_without_command=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode=None,
)
subscriptions_app = _group("Check and load the subscriptions file.")
papers_app = _group("Look at the papers digestbot has ingested.")
db_app = _group("Look at, upgrade and copy the database.")
app.add_typer(subscriptions_app, name="subscriptions")
app.add_typer(papers_app, name="papers")
app.add_typer(db_app, name="db")


def _print_version(wanted: bool) -> None:
    if wanted:
        from importlib.metadata import version

        typer.echo(f"digestbot {version('digestbot')}")
        raise typer.Exit(0)


@app.callback()
def _top(
    ctx: typer.Context,
    _version: Annotated[
        bool,
        typer.Option(
            "--version",
            help="Print digestbot's version and exit.",
            callback=_print_version,
            is_eager=True,
        ),
    ] = False,
) -> None:
    show_help_when_bare(ctx)


class _Stdout(Console):
    """The console of stdout; a reader that stops early (`digestbot status | head -1`) is
    left to the entry point, which ends the process as the Python docs advise."""

    def on_broken_pipe(self) -> None:
        self.quiet = True  # nothing more to say to a reader that left
        raise BrokenPipeError


out = _Stdout(highlight=False, soft_wrap=True)
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


GROUPS = ("subscriptions", "papers", "db", "feedback")


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
        problems += [_setting_problem(e["loc"], e["msg"]) for e in exc.errors()]
        raise SettingsError(problems, "fix the environment variable or .env") from None
    if sends:
        problems += config.placeholders(settings)
    if problems:
        raise SettingsError(problems, "fix the environment variable or .env")
    return settings


def _setting_problem(loc: tuple[int | str, ...], message: str) -> str:
    """One setting's problem as a line; a check across settings names them in its message."""
    if not loc:
        return message.removeprefix("Value error, ")
    return f"DIGESTBOT_{format_path(loc).upper()}: {message} (fix it in the environment or .env)"


def say_where_emails_go(settings: Settings) -> None:
    """Tell the user, before anything is sent, where this run's emails go."""
    err.print(config.where_emails_go(settings), markup=False)


def now_utc() -> datetime:
    """The clock, read only here and passed down."""
    return datetime.now(UTC)


@contextmanager
def open_engine(
    settings: Settings, *, upgrade: bool = True, create: bool = False
) -> Iterator[Engine]:
    """The database engine of `settings`, its schema upgraded (unless not `upgrade`); its
    connections are closed when the block ends, however it ends (Python 3.13 warns of every
    SQLite connection that is left to the garbage collector). A database failure in the block
    (locked, full, read-only, corrupt) becomes one StoreError line. A missing SQLite file is
    an error unless `create`: only the commands that set a database up make one."""
    url, waited = settings.database_url, settings.db_busy_timeout
    if not create:
        _refuse_missing_sqlite(url)
    engine = make_engine(url, upgrade=upgrade, on_upgrade=say_upgraded, busy_timeout=waited)
    try:
        yield engine
    except SQLAlchemyError as exc:
        raise store_error(exc, url, busy_timeout=waited) from None
    finally:
        engine.dispose()


def backend(url: str) -> str:
    """The kind of database a URL names ("sqlite", "postgresql"…); "" if it is not a URL
    (opening it says what is wrong)."""
    try:
        return make_url(url).get_backend_name()
    except (ArgumentError, ValueError):
        return ""


def sqlite_file(url: str) -> Path | None:
    """The file a SQLite URL names; None for another database, memory or a `file:` URI
    (the server, or SQLite itself, has the say there)."""
    try:
        parsed = make_url(url)
    except (ArgumentError, ValueError):
        return None  # make_engine says what is wrong with it
    name = parsed.database
    if parsed.get_backend_name() != "sqlite" or not name or name == ":memory:":
        return None
    return None if name.startswith("file:") or "uri" in parsed.query else Path(name)


def _refuse_missing_sqlite(url: str) -> None:
    path = sqlite_file(url)
    if path is not None and not path.exists():
        # Opening it would create an empty database: every command would then answer
        # "nothing", as if the setup were fine.
        raise StoreError(
            f"no database here ({path.absolute()}): run digestbot init, or set "
            "DIGESTBOT_DATABASE_URL"
        )


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
    table = Table("subscriber", "papers", "status")
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
    papers = plural(count, "matching paper")
    out.print(f"{papers} did not fit max_papers: {fate}.", markup=False)
