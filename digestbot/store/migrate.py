"""Store stage: the schema's revision, checked whenever a database is opened, and the
Alembic migrations that bring an older database up to this digestbot's."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.exc import SQLAlchemyError

from digestbot.errors import ConfigError

MIGRATIONS = Path(__file__).resolve().parent / "migrations"
FIRST = "0001"  # the schema of release 0.1.0, the last made without migrations
# Held (PostgreSQL) while one process upgrades, so processes opening the database at once
# upgrade it once; the others wait, then find it current.
MIGRATE_LOCK = 0x64696766
_HINT_NEWER = "install the newer digestbot that made it, or set DIGESTBOT_DATABASE_URL to another"


@dataclass(frozen=True)
class Upgraded:
    """A database brought up to date: the revision it was at (None: new) and is at now."""

    before: str | None
    after: str


def _config(connection: Connection | None = None) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    return config


def head() -> str:
    """The newest revision this digestbot knows."""
    found = ScriptDirectory.from_config(_config()).get_current_head()
    if found is None:
        raise RuntimeError(f"no migrations in {MIGRATIONS}")
    return found


def known() -> set[str]:
    """Every revision this digestbot knows."""
    return {script.revision for script in ScriptDirectory.from_config(_config()).walk_revisions()}


def current(engine: Engine) -> str | None:
    """The database's revision; None for a database made without migrations (or empty)."""
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def made_by(engine: Engine) -> str:
    """What made a database without a revision, in words: 0.1.0, an earlier digestbot, or
    nothing yet."""
    with engine.connect() as connection:
        if _made_by_0_1_0(connection):
            return f"made by digestbot 0.1.0 (revision {FIRST}, not marked yet)"
        if inspect(connection).has_table("papers"):
            return "made by a digestbot older than 0.1.0"
    return "empty"


def ensure_current(
    engine: Engine, *, on_upgrade: Callable[[Upgraded], None] | None = None
) -> Upgraded | None:
    """Upgrade the database when it is older than this digestbot, each revision in a
    transaction of its own; refuse, touching nothing, one that is newer."""
    revision = current(engine)
    newest = head()
    if revision == newest:
        return None
    if revision is not None and revision not in known():
        raise ConfigError(
            f"the database is at revision {revision}, newer than this digestbot's {newest}",
            _HINT_NEWER,
        )
    done = upgrade(engine)
    if on_upgrade is not None:
        on_upgrade(done)
    return done


def upgrade(engine: Engine, to: str = "head") -> Upgraded:
    """Apply every missing revision up to `to`; a database made by 0.1.0 is first marked
    as FIRST."""
    with _migrating(engine) as connection:
        before = _revision(connection)
        if before is None and inspect(connection).has_table("papers"):
            _check_release_0_1_0(connection)
            connection.commit()  # Alembic begins each revision's transaction itself
            command.stamp(_config(connection), FIRST)
            before = FIRST
        try:
            command.upgrade(_config(connection), to)
        except SQLAlchemyError as exc:
            connection.rollback()
            now_at = _revision(connection)
            raise ConfigError(
                f"cannot upgrade the database past revision {now_at}: "
                f"{exc.__class__.__name__}: {exc.args[0]}",
                "the revisions before it are kept; fix the cause and run `digestbot db upgrade`",
            ) from None
        after = _revision(connection) or FIRST
        _check_foreign_keys(connection)
    return Upgraded(before, after)


def _revision(connection: Connection) -> str | None:
    """The revision, read in a transaction of its own: Alembic runs a revision in its own
    transaction only on a connection outside one."""
    revision = MigrationContext.configure(connection).get_current_revision()
    connection.commit()
    return revision


def _made_by_0_1_0(connection: Connection) -> bool:
    found = inspect(connection)
    if not (found.has_table("papers") and found.has_table("delivery_messages")):
        return False
    return "sent_mark" in {c["name"] for c in found.get_columns("papers")}


def _check_release_0_1_0(connection: Connection) -> None:
    """A database without a revision must have 0.1.0's tables: an earlier one cannot be
    told apart reliably, and guessing would migrate it wrongly."""
    if not _made_by_0_1_0(connection):
        raise ConfigError(
            "the database was made by a digestbot older than 0.1.0",
            "open it once with digestbot 0.1.0 (pip install digestbot==0.1.0), then with this one",
        )


def _check_foreign_keys(connection: Connection) -> None:
    """SQLite's table copies run with foreign keys off: check them once afterwards."""
    if connection.dialect.name != "sqlite":
        return
    broken = connection.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
    if broken:
        raise ConfigError(
            f"the upgraded database has {len(broken)} rows whose references are broken",
            "restore the database from a backup and report this as a bug",
        )


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection for Alembic. On SQLite a separate engine: pysqlite begins no
    transaction before DDL by itself, and a table copy must run with foreign keys off
    (a pragma that cannot change inside a transaction); on PostgreSQL the engine's own,
    holding MIGRATE_LOCK."""
    if engine.dialect.name != "sqlite" or engine.url.database in (None, "", ":memory:"):
        with engine.connect() as connection:
            if engine.dialect.name == "postgresql":
                connection.exec_driver_sql(f"SELECT pg_advisory_lock({MIGRATE_LOCK})")
                connection.commit()
            try:
                yield connection
            finally:
                if engine.dialect.name == "postgresql":
                    connection.rollback()
                    connection.exec_driver_sql(f"SELECT pg_advisory_unlock({MIGRATE_LOCK})")
                    connection.commit()
        return
    separate = create_engine(engine.url)
    event.listen(separate, "connect", _sqlite_for_migrations)
    event.listen(separate, "begin", _begin_immediate)
    try:
        with separate.connect() as connection:
            yield connection
    finally:
        separate.dispose()


def _sqlite_for_migrations(dbapi_connection: Any, _record: Any) -> None:
    dbapi_connection.isolation_level = None  # SQLAlchemy's begin event emits BEGIN instead
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=OFF")
    cursor.close()


def _begin_immediate(connection: Connection) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")
