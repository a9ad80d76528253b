"""Store stage: database failures (locked, full, read-only, corrupt, unreachable) as one-line
StoreErrors with a hint, and database URLs fit to print (the password as ***)."""

from __future__ import annotations

import re
import sqlite3

from sqlalchemy import Engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, OperationalError, SQLAlchemyError

from digestbot.errors import StoreError

_CORRUPT_HINT = "restore it from a backup; `sqlite3 FILE .recover` may save what is left"
_DISK_HINT = "free some space on its disk, check `ulimit -f`, then run the command again"

# SQLite's primary result codes (the low byte of an extended one): what went wrong, and how
# to fix it; `{url}` is the database, `{waited}` the busy timeout.
_SQLITE: dict[int, tuple[str, str]] = {
    sqlite3.SQLITE_BUSY: (
        "the database {url} is locked: another process held its write lock for over {waited}",
        "let the other digestbot command finish, or raise DIGESTBOT_DB_BUSY_TIMEOUT",
    ),
    sqlite3.SQLITE_LOCKED: (
        "the database {url} is locked by another connection",
        "let the other digestbot command finish and run this one again",
    ),
    sqlite3.SQLITE_FULL: ("the disk holding the database {url} is full", _DISK_HINT),
    sqlite3.SQLITE_IOERR: (
        "disk I/O error on the database {url}: its disk may be full or failing",
        _DISK_HINT,
    ),
    sqlite3.SQLITE_READONLY: (
        "the database {url} is read-only: attempt to write a readonly database",
        "make the file and its folder writable by the user running digestbot",
    ),
    sqlite3.SQLITE_CORRUPT: (
        "the database {url} is corrupt (its pages are damaged)",
        _CORRUPT_HINT,
    ),
    sqlite3.SQLITE_NOTADB: ("the file of {url} is not a SQLite database", _CORRUPT_HINT),
    sqlite3.SQLITE_CANTOPEN: (
        "cannot open the database {url}",
        "check that its folder exists and is writable",
    ),
}

# PostgreSQL SQLSTATEs (or their two-character class), the same way.
_POSTGRES: dict[str, tuple[str, str]] = {
    "08": (
        "cannot reach the database {url}: {reason}",
        "check that PostgreSQL runs and the URL's host, port, user and password",
    ),
    "28": (
        "the database {url} refused the login: {reason}",
        "check the user name and password in DIGESTBOT_DATABASE_URL",
    ),
    "53100": ("the disk of the database {url} is full", _DISK_HINT),
    "25006": (
        "the database {url} is read-only (a standby or a read-only transaction)",
        "point DIGESTBOT_DATABASE_URL at the primary server",
    ),
    "55P03": (
        "the database {url} is locked by another session",
        "let the other digestbot command finish and run this one again",
    ),
    "XX001": ("the database {url} is corrupt: {reason}", "restore it from a backup"),
}


def shown(url: str) -> str:
    """`url` fit to print: its password, if any, replaced by ***."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except (ArgumentError, ValueError):
        # Not a URL SQLAlchemy can parse: hide whatever sits between "user:" and "@".
        return re.sub(r"(://[^/@:]*:)[^@]*@", r"\1***@", url)


def _password(url: str) -> str | None:
    try:
        secret = make_url(url).password
    except (ArgumentError, ValueError):
        return None
    return str(secret) if secret else None


def store_error(exc: SQLAlchemyError, url: str, *, busy_timeout: float = 0.0) -> StoreError:
    """`exc` (a failure of the database at `url`) as one line: what, where, and how to fix it."""
    orig = exc.orig if isinstance(exc, DBAPIError) else None
    reason = str(orig if orig is not None else exc).strip().splitlines()[0]
    found = _classify(exc, orig)
    if found is None:
        what, hint = "the database {url} failed: {reason}", "see the message; it may be a bug"
    else:
        what, hint = found
    message = what.format(url=shown(url), reason=reason, waited=f"{busy_timeout:g} s")
    secret = _password(url)
    if secret:
        message = message.replace(secret, "***")
    return StoreError(message, hint)


def _classify(exc: SQLAlchemyError, orig: BaseException | None) -> tuple[str, str] | None:
    """The (what, hint) templates of a driver's error, from its public error code."""
    if isinstance(orig, sqlite3.Error):
        code = getattr(orig, "sqlite_errorcode", None)
        return None if code is None else _SQLITE.get(code & 0xFF)
    if not hasattr(orig, "sqlstate"):  # psycopg's errors carry a SQLSTATE, or None
        return None
    state = getattr(orig, "sqlstate", None)
    if state is None:
        # psycopg fails a connection attempt (refused, timed out, unknown host) without one.
        return _POSTGRES["08"] if isinstance(exc, OperationalError) else None
    return _POSTGRES.get(state) or _POSTGRES.get(str(state)[:2])


def check_integrity(engine: Engine, url: str) -> None:
    """Raise StoreError if SQLite's quick check finds damaged pages (PostgreSQL has no cheap
    equivalent: it is trusted)."""
    if engine.dialect.name != "sqlite":
        return
    with engine.connect() as connection:
        found = [str(row[0]) for row in connection.exec_driver_sql("PRAGMA quick_check(100)")]
    if found == ["ok"]:
        return
    # A row may hold several lines, the first naming the schema ("*** in database main ***").
    problems = [p for row in found for p in row.splitlines() if not p.startswith("***")]
    more = f" and {len(problems) - 1} more problems" if len(problems) > 1 else ""
    first = problems[0] if problems else "damaged pages"
    raise StoreError(f"the database {shown(url)} is corrupt: {first}{more}", _CORRUPT_HINT)
