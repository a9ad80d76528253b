"""CLI commands over the database itself: `db upgrade`, `db current` and `db copy`."""

from __future__ import annotations

from typing import Annotated

import typer
from sqlalchemy import Engine

from digestbot.cli.common import (
    db_app,
    friendly,
    load_settings,
    open_engine,
    out,
    say_upgraded,
)
from digestbot.compose.words import plural
from digestbot.store import migrate
from digestbot.store.copy import copy_database, running_daemon
from digestbot.store.engine import make_engine
from digestbot.store.failures import shown
from digestbot.store.lock import daemon_running


@db_app.command("upgrade")
@friendly
def db_upgrade() -> None:
    """Upgrade the database to this digestbot's schema, creating it if there is none (every
    command also upgrades it on open)."""
    with open_engine(load_settings(), upgrade=False, create=True) as engine:
        done = migrate.ensure_current(engine, on_upgrade=say_upgraded)
    if done is None:
        out.print(f"The database is at revision {migrate.head()}: nothing to do.")
    elif done.before is None:
        out.print(f"Created the database at revision {done.after}.")


@db_app.command("current")
@friendly
def db_current() -> None:
    """Show the database's schema revision and the one this digestbot needs; upgrades nothing."""
    with open_engine(load_settings(), upgrade=False) as engine:
        revision = migrate.current(engine)
        made = migrate.made_by(engine)
    needed = migrate.head()
    at = made if revision is None else f"at revision {revision}"
    verdict = "up to date" if revision == needed else "opening it upgrades it"
    if revision is not None and revision not in migrate.known():
        verdict = "newer than this digestbot: upgrade digestbot"
    elif revision is None and not made.startswith(("made by digestbot 0.1.0", "empty")):
        verdict = "this digestbot cannot upgrade it"
    out.print(f"The database is {at}; this digestbot needs {needed} ({verdict}).")


@db_app.command("copy")
@friendly
def db_copy(
    to: Annotated[
        str,
        typer.Option("--to", metavar="URL", help="The database to copy into (new and empty)."),
    ],
) -> None:
    """Copy every row of the database (DIGESTBOT_DATABASE_URL) into another, empty one, such
    as a new PostgreSQL database: `digestbot db copy --to postgresql://user@host/dbname`. The
    target's tables are created first. One transaction: on any failure the target is left as
    it was. Stop `digestbot run` first; then set DIGESTBOT_DATABASE_URL to the target."""
    settings = load_settings()
    with open_engine(settings) as source:
        if daemon_running(source):
            raise running_daemon()  # before the target's schema is made: nothing written
        target = make_engine(to, on_upgrade=say_upgraded, busy_timeout=settings.db_busy_timeout)
        try:
            copied = copy_database(source, target)
        finally:
            target.dispose()
        _say_copied(copied, source, to)


def _say_copied(copied: dict[str, int], source: Engine, to: str) -> None:
    width = max(len(name) for name in copied)
    for name, rows in copied.items():
        out.print(f"{name:<{width}}  {plural(rows, 'row')}", markup=False)
    whence = shown(source.url.render_as_string(hide_password=False))
    total = plural(sum(copied.values()), "row")
    out.print(
        f"Copied {total} in {plural(len(copied), 'table')} from {whence} to {shown(to)}.",
        markup=False,
    )
