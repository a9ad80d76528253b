"""CLI commands over the database itself: `db upgrade` and `db current`."""

from __future__ import annotations

from digestbot.cli.common import (
    db_app,
    friendly,
    load_settings,
    open_engine,
    out,
    say_upgraded,
)
from digestbot.store import migrate


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
