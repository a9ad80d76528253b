"""Store stage: a database's whole state copied into another, empty one, in one transaction."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import (
    JSON,
    Column,
    Connection,
    Engine,
    Insert,
    MetaData,
    Table,
    bindparam,
    inspect,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import SQLModel

from digestbot.errors import ConfigError, DigestbotError
from digestbot.store import tables as _tables  # noqa: F401  (importing it fills the metadata)
from digestbot.store.engine import write_session
from digestbot.store.failures import shown, store_error
from digestbot.store.lock import LockTaken, daemon_lock
from digestbot.store.migrate import current

BATCH = 2_000  # rows read and written at a time: a table of stored emails never sits in memory
VERSION_TABLE = "alembic_version"  # each side keeps its own, made by its own upgrade

# The JSON type of tables.Json, binding None as SQL NULL rather than the JSON text `null`.
NULLABLE_JSON = JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")

Progress = Callable[[str, int], None]  # (table, rows copied so far) after every batch


def copy_database(
    source: Engine,
    target: Engine,
    *,
    progress: Progress | None = None,
    batch: int = BATCH,
    metadata: MetaData = SQLModel.metadata,
) -> dict[str, int]:
    """Copy every row of every table of `metadata` from `source` into `target`, in foreign-key
    order, and return the rows copied per table. The target's writes are one transaction:
    on any failure, or a refusal (a target with rows, the source itself, another schema
    revision, a running `digestbot run` on the source), it is left exactly as it was."""
    identity = _identity(source)
    if identity is not None and identity == _identity(target):
        raise ConfigError(
            f"the target {_url(target)} is the database being copied",
            "give --to the URL of another, empty database",
        )
    try:
        with daemon_lock(source):
            return _copy(source, target, progress, batch, metadata)
    except LockTaken:
        raise running_daemon() from None


def running_daemon() -> DigestbotError:
    """The refusal to copy a database a `digestbot run` is changing."""
    return DigestbotError(
        "a `digestbot run` is using the database to copy and would change it mid-copy",
        "stop it first, then copy",
    )


def _copy(
    source: Engine, target: Engine, progress: Progress | None, batch: int, metadata: MetaData
) -> dict[str, int]:
    tables = [t for t in metadata.sorted_tables if t.name != VERSION_TABLE]
    with _blamed(source):
        _check_revisions(source, target)
        _check_known_tables(source, {t.name for t in tables})
    copied: dict[str, int] = {}
    with _blamed(target), write_session(target) as session, _snapshot(source) as reading:
        writing = session.connection()
        _check_empty(writing, tables, target)
        for table in tables:
            copied[table.name] = _copy_table(reading, writing, table, batch, progress)
        if target.dialect.name == "postgresql":
            _reset_sequences(writing, tables)
    return copied


def _copy_table(
    reading: Connection, writing: Connection, table: Table, batch: int, progress: Progress | None
) -> int:
    """Copy one table in batches of `batch` rows, in primary-key order."""
    query = select(table).order_by(*table.primary_key.columns)
    insert = _insert(table)
    count = 0
    with _blamed(reading.engine):
        batches = reading.execution_options(yield_per=batch).execute(query).partitions()
    while True:
        with _blamed(reading.engine):  # a failure to read is the source's, not the target's
            rows = next(batches, None)
        if rows is None:
            return count
        writing.execute(insert, [{f"v_{k}": v for k, v in row._mapping.items()} for row in rows])
        count += len(rows)
        if progress is not None:
            progress(table.name, count)


def _insert(table: Table) -> Insert:
    """An INSERT of every column of `table`. A nullable JSON column binds None as SQL NULL
    (which is what reads back as None): its own type would store the JSON text `null`."""
    values = {
        c.name: bindparam(f"v_{c.name}", type_=NULLABLE_JSON if _json_null(c) else c.type)
        for c in table.columns
    }
    return table.insert().values(values)


def _json_null(column: Column[Any]) -> bool:
    return bool(column.nullable) and isinstance(column.type, JSON)


def _check_revisions(source: Engine, target: Engine) -> None:
    theirs, ours = current(source), current(target)
    if theirs != ours:
        raise ConfigError(
            f"the database to copy is at schema revision {theirs} and the target "
            f"{_url(target)} at {ours}",
            "open both with this digestbot (`digestbot db upgrade`) before copying",
        )


def _check_known_tables(source: Engine, known: set[str]) -> None:
    """Refuse a source with tables this digestbot does not know: they would be left behind."""
    unknown = sorted(set(inspect(source).get_table_names()) - known - {VERSION_TABLE})
    if unknown:
        raise ConfigError(
            f"the database to copy has tables this digestbot does not know: {', '.join(unknown)}",
            "copy it with the digestbot that made them",
        )


def _check_empty(writing: Connection, tables: list[Table], target: Engine) -> None:
    full = [t.name for t in tables if writing.execute(select(1).select_from(t).limit(1)).first()]
    if full:
        raise ConfigError(
            f"the target {_url(target)} already has rows (in {', '.join(full)})",
            "copy into a new, empty database; nothing was written",
        )


def _reset_sequences(writing: Connection, tables: list[Table]) -> None:
    """Move every serial or identity sequence past the copied ids: the rows came with their
    ids, so the sequences never advanced, and the next insert would reuse id 1."""
    quote = writing.dialect.identifier_preparer
    for table in tables:
        for column in table.columns:
            found = writing.execute(
                text("SELECT pg_get_serial_sequence(:table, :column)"),
                {"table": quote.format_table(table), "column": column.name},
            ).scalar()
            if found is None:
                continue
            # setval(…, false): the next id handed out is max + 1 (1 for an empty table).
            writing.execute(
                text(
                    f"SELECT setval(CAST(:sequence AS regclass), "
                    f"COALESCE(MAX({quote.format_column(column)}), 0) + 1, false) "
                    f"FROM {quote.format_table(table)}"
                ),
                {"sequence": found},
            )


@contextmanager
def _snapshot(source: Engine) -> Iterator[Connection]:
    """A connection reading the source in one transaction, so every table is read as of one
    moment even if another command writes meanwhile."""
    with source.connect() as connection:
        if source.dialect.name == "postgresql":
            connection = connection.execution_options(isolation_level="REPEATABLE READ")
        with connection.begin():
            if source.dialect.name == "sqlite":
                connection.exec_driver_sql("BEGIN")  # pysqlite begins none before a SELECT
            yield connection


@contextmanager
def _blamed(engine: Engine) -> Iterator[None]:
    """A database failure in the block as one StoreError line naming `engine`'s database."""
    try:
        yield
    except SQLAlchemyError as exc:
        raise store_error(exc, engine.url.render_as_string(hide_password=False)) from None


def _identity(engine: Engine) -> tuple[Any, ...] | None:
    """What tells two databases apart: a SQLite file's device and inode (None for memory);
    a PostgreSQL server's start time and the database's name."""
    if engine.dialect.name == "sqlite":
        name = engine.url.database
        if not name or name == ":memory:" or engine.url.query.get("mode") == "memory":
            return None
        path = name.removeprefix("file:") if engine.url.query.get("uri") == "true" else name
        try:
            found = os.stat(path)
        except OSError:
            return None  # not made yet, so not the source
        return ("sqlite", found.st_dev, found.st_ino)
    if engine.dialect.name == "postgresql":
        with _blamed(engine), engine.connect() as connection:
            query = "SELECT pg_postmaster_start_time(), current_database()"
            row = connection.exec_driver_sql(query).one()
        return ("postgresql", *row)
    return (engine.dialect.name, _url(engine))


def _url(engine: Engine) -> str:
    return shown(engine.url.render_as_string(hide_password=False))
