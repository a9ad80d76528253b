"""Tests for copy_database: a whole database's rows into another, empty one, in one go."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from helpers import prepare, subscribers
from sqlalchemy import Column, Engine, Integer, MetaData, Table, select, text
from sqlmodel import SQLModel

from digestbot import service
from digestbot.errors import ConfigError
from digestbot.rules.readers import record_vote, suppress
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.schedule import ledger, tasks
from digestbot.settings import Settings
from digestbot.store.copy import copy_database
from digestbot.store.engine import make_engine, write_session
from digestbot.store.tables import JobRow, Json, PaperVectorRow

TABLES = [t for t in SQLModel.metadata.sorted_tables if t.name != "alembic_version"]


async def build_state(engine: Engine, settings: Settings, now: datetime) -> None:
    """Papers, three readers and their rules, a digest sent to each over SMTP (deliveries,
    stored messages, sent papers), a vote, an unsubscribed reader, a stored vector, the
    scheduler's ledger (a decided period, a source run, a job, the daemon's lease) and shared
    work (a round's slices, a worker)."""
    prepare(engine, now, count=3)
    outcomes, _ = await service.send_now(engine, settings, now=now)
    assert {o.status for o in outcomes} == {"sent"}
    first = contents(engine)["papers"][0][0]
    assert record_vote(engine, 1, first, "up", digest="2026-11-24", now=now)
    with write_session(engine) as session:
        assert suppress(session, "reader2@example.org", now=now, via="test")
        session.add(PaperVectorRow(paper_id=first, model="m", vector=bytes(range(256)) * 4))
        ledger.record_periods(session, [ledger.Decided(1, "daily:2026-11-24", now, 3)], now=now)
    ledger.record_source_run(engine, "hf", now=now, new=39)
    ledger.save_jobs(engine, [JobRow(id="send", description="daily digests", next_run_at=now)])
    ledger.take_lease(engine, now=now)
    tasks.make_round(engine, "digest", at=now, size=2, now=now)  # as PostgreSQL workers share
    tasks.register(engine, "host:1", now=now)


def contents(engine: Engine) -> dict[str, list[tuple[Any, ...]]]:
    """Every table's rows, as sorted tuples."""
    with engine.connect() as connection:
        return {
            t.name: sorted((tuple(r) for r in connection.execute(select(t))), key=repr)
            for t in TABLES
        }


@pytest.fixture(params=["sqlite", "postgresql"])
def target_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new SQLite file beside the source, or a fresh database of the PostgreSQL cluster."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'target.db'}"
    pg_settings: Settings = request.getfixturevalue("pg_settings")
    return pg_settings.database_url


@pytest.fixture
def target(target_url: str) -> Iterator[Engine]:
    """The target's engine, its schema made by the app's own migrations."""
    engine = make_engine(target_url)
    yield engine
    engine.dispose()


async def test_a_copy_holds_every_row_of_every_table(
    engine: Engine, target: Engine, smtp_settings: Settings, clock: datetime
) -> None:
    """Every table of a lived-in SQLite database arrives with equal rows, counted per table."""
    await build_state(engine, smtp_settings, clock)
    copied = copy_database(engine, target)
    before = contents(engine)
    assert contents(target) == before
    assert copied == {name: len(rows) for name, rows in before.items()}
    empty = {name for name, rows in copied.items() if rows == 0}
    assert empty == {"feed_state", "enrichment", "folder_files"}


async def test_new_rows_after_a_copy_get_ids_past_the_copied_ones(
    engine: Engine, target: Engine, smtp_settings: Settings, clock: datetime
) -> None:
    """Syncing a new reader and voting on the copy work: the sequences were moved on."""
    await build_state(engine, smtp_settings, clock)
    copy_database(engine, target)
    later = clock + timedelta(hours=1)
    sync_subscriptions(target, parse_subscriptions(subscribers(4), source="s.yaml"), now=later)
    after = contents(target)
    assert sorted(row[0] for row in after["subscribers"]) == [1, 2, 3, 4]
    assert record_vote(target, 4, after["papers"][0][0], "down", digest="", now=later)
    assert sorted(row[0] for row in contents(target)["votes"]) == [1, 2]


async def test_a_failure_mid_copy_leaves_the_target_as_it_was(
    engine: Engine, target: Engine, smtp_settings: Settings, clock: datetime
) -> None:
    """A copy that fails after some batches are written leaves every table of the target empty."""
    await build_state(engine, smtp_settings, clock)

    def fail_at_deliveries(table: str, rows: int) -> None:
        if table == "deliveries":
            raise RuntimeError("the disk went away")

    with pytest.raises(RuntimeError):
        copy_database(engine, target, progress=fail_at_deliveries, batch=5)
    assert all(rows == [] for rows in contents(target).values())


def test_it_copies_a_table_in_batches(engine: Engine, target: Engine, clock: datetime) -> None:
    """With batches of 10 rows, 39 papers arrive as 10, 20, 30 and 39 rows copied."""
    prepare(engine, clock, count=1)
    seen: list[tuple[str, int]] = []
    copy_database(engine, target, progress=lambda t, n: seen.append((t, n)), batch=10)
    assert [n for t, n in seen if t == "papers"] == [10, 20, 30, 39]


def test_it_refuses_a_target_that_has_data(engine: Engine, target: Engine, clock: datetime) -> None:
    """A target with any row is refused, naming the table, and keeps exactly its rows."""
    prepare(engine, clock, count=2)
    sync_subscriptions(target, parse_subscriptions(subscribers(1), source="s.yaml"), now=clock)
    before = contents(target)
    with pytest.raises(ConfigError, match=r"already has rows \(in subscribers, rules\)"):
        copy_database(engine, target)
    assert contents(target) == before


def test_it_refuses_a_source_at_another_schema_revision(
    engine: Engine, target: Engine, clock: datetime
) -> None:
    """Different revisions on the two sides are refused before anything is written."""
    prepare(engine, clock, count=1)
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
    with pytest.raises(ConfigError, match="schema revision 0007"):
        copy_database(engine, target)
    assert all(rows == [] for rows in contents(target).values())


def test_it_refuses_a_source_with_a_table_it_does_not_know(engine: Engine, target: Engine) -> None:
    """A table the metadata lacks would be left behind: the copy is refused instead."""
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (id INTEGER PRIMARY KEY)"))
    with pytest.raises(ConfigError, match="does not know: notes"):
        copy_database(engine, target)


def test_a_nullable_json_column_keeps_sql_null_apart_from_values(
    tmp_path: Path, target_url: str
) -> None:
    """SQL NULL in a nullable JSON column stays NULL in the copy, not the JSON text `null`."""
    metadata = MetaData()
    docs = Table(
        "docs",
        metadata,
        Column("id", Integer, primary_key=True),
        Column("doc", Json, nullable=True),
    )
    source = make_engine(f"sqlite:///{tmp_path / 'plain.db'}", upgrade=False)
    target = make_engine(target_url, upgrade=False)
    try:
        for engine in (source, target):
            metadata.create_all(engine)
        with source.begin() as connection:
            connection.execute(docs.insert(), [{"id": 1, "doc": {"a": [1]}}, {"id": 2, "doc": []}])
            connection.execute(text("INSERT INTO docs (id, doc) VALUES (3, NULL)"))
        assert copy_database(source, target, metadata=metadata) == {"docs": 3}
        with target.connect() as connection:
            nulls = connection.execute(text("SELECT id FROM docs WHERE doc IS NULL")).all()
            rows = connection.execute(select(docs).order_by(docs.c.id)).all()
        assert nulls == [(3,)]
        assert [tuple(r) for r in rows] == [(1, {"a": [1]}), (2, []), (3, None)]
    finally:
        source.dispose()
        target.dispose()


async def test_a_postgresql_database_copies_back_to_sqlite_in_batches(
    engine: Engine, pg_engine: Engine, smtp_settings: Settings, clock: datetime, tmp_path: Path
) -> None:
    """SQLite to PostgreSQL and back, read in small batches, ends with the rows it began with."""
    await build_state(engine, smtp_settings, clock)
    copy_database(engine, pg_engine)
    back = make_engine(f"sqlite:///{tmp_path / 'back.db'}")
    try:
        copy_database(pg_engine, back, batch=7)
        assert contents(back) == contents(engine)
    finally:
        back.dispose()


def test_it_refuses_a_postgresql_target_that_is_the_source(
    pg_engine: Engine, pg_settings: Settings
) -> None:
    """The same PostgreSQL database through a second engine is refused as the source itself."""
    same = make_engine(pg_settings.database_url.replace("127.0.0.1", "localhost"))
    try:
        with pytest.raises(ConfigError, match="is the database being copied"):
            copy_database(pg_engine, same)
    finally:
        same.dispose()
