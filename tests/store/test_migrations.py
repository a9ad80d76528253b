"""Tests for the versioned schema: upgrading a 0.1.0 database, refusing newer ones, and the
models agreeing with the migrations."""

from __future__ import annotations

import asyncio
import json
import shutil
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from conftest import FIXTURES, db_fingerprint
from sqlalchemy import Engine, text
from sqlmodel import SQLModel

from digestbot import service
from digestbot.errors import ConfigError
from digestbot.settings import Settings
from digestbot.store import migrate
from digestbot.store.engine import make_engine

RELEASE_0_1_0 = FIXTURES / "db" / "digestbot-0.1.0.db"
AFTER = datetime(2026, 12, 3, 9, 0, tzinfo=UTC)  # the day after the fixture's last step


@pytest.fixture
def old_db(tmp_path: Path) -> Path:
    """A copy of the database digestbot 0.1.0 wrote."""
    copy = tmp_path / "digestbot.db"
    shutil.copyfile(RELEASE_0_1_0, copy)
    return copy


def rows(path: Path, sql: str) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as conn:
        return conn.execute(sql).fetchall()


STATE = {
    "papers": "SELECT id, title, abstract, authors, categories, links, sources, first_seen,"
    " sent_mark FROM papers ORDER BY id",
    "subscribers": "SELECT id, email, name, active, max_papers, timezone, send_at, frequency,"
    " send_empty, created_at, updated_at FROM subscribers ORDER BY id",
    "rules": "SELECT id, subscriber_id, position, name, body FROM rules ORDER BY id",
    "deliveries": "SELECT id, subscriber_id, kind, period_key, message_id, status, attempts,"
    " paper_ids, created_at, sent_at, last_error FROM deliveries ORDER BY id",
    "messages": "SELECT delivery_id, raw FROM delivery_messages ORDER BY delivery_id",
    "sent": "SELECT * FROM sent_papers ORDER BY id",
    "periods": "SELECT * FROM digest_periods ORDER BY id",
    "sources": "SELECT * FROM source_runs ORDER BY source",
}


def state(path: Path) -> dict[str, list[tuple[Any, ...]]]:
    """Everything a user keeps, as SQLite holds it (JSON columns stay the same text)."""
    return {name: rows(path, sql) for name, sql in STATE.items()}


@pytest.fixture
def opened(old_db: Path) -> Iterator[Engine]:
    engine = make_engine(f"sqlite:///{old_db}")
    yield engine
    engine.dispose()


def test_a_0_1_0_database_is_upgraded_on_open_with_nothing_lost(old_db: Path) -> None:
    """Papers, subscribers, rules, emails with their messages, sent history, periods and
    source runs are the same after the automatic upgrade."""
    before = state(old_db)
    seen: list[migrate.Upgraded] = []
    engine = make_engine(f"sqlite:///{old_db}", on_upgrade=seen.append)
    engine.dispose()
    assert seen == [migrate.Upgraded(migrate.FIRST, migrate.head())]
    assert state(old_db) == before
    assert rows(old_db, "SELECT version_num FROM alembic_version") == [(migrate.head(),)]


def test_the_upgrade_stores_each_queued_emails_envelope_from_its_subscriber_and_message(
    opened: Engine, old_db: Path
) -> None:
    """Each 0.1.0 row gets its subscriber's address as recipient, and a row with a stored
    message the From address written in it as sender."""
    envelopes = rows(
        old_db,
        "SELECT d.recipient, s.email, d.sender, m.raw IS NOT NULL FROM deliveries AS d "
        "JOIN subscribers AS s ON s.id = d.subscriber_id "
        "LEFT JOIN delivery_messages AS m ON m.delivery_id = d.id",
    )
    assert envelopes and all(recipient == email for recipient, email, _, _ in envelopes)
    assert {sender for _, _, sender, stored in envelopes if stored} == {"digestbot@example.org"}


def test_send_now_after_the_upgrade_sends_nothing_already_sent(
    opened: Engine, old_db: Path, settings: Settings
) -> None:
    """The queued emails go out as they were, and no new email repeats a paper a reader
    already had."""
    had = set(rows(old_db, "SELECT subscriber_id, paper_id FROM sent_papers"))
    queued = set(rows(old_db, "SELECT id, message_id FROM deliveries WHERE status = 'pending'"))
    (last,) = rows(old_db, "SELECT max(id) FROM deliveries")[0]
    assert had and queued
    asyncio.run(service.send_now(opened, settings, now=AFTER))
    sent = set(rows(old_db, "SELECT id, message_id FROM deliveries WHERE status = 'sent'"))
    assert queued <= sent
    new = rows(old_db, f"SELECT subscriber_id, paper_ids FROM deliveries WHERE id > {last}")
    assert new, "the day's papers not yet sent make new digests"
    assert [(sub, p) for sub, ids in new for p in json.loads(ids) if (sub, p) in had] == []


def test_a_database_newer_than_this_digestbot_is_refused_untouched(old_db: Path) -> None:
    """A revision this digestbot does not know stops the command, and nothing is written."""
    make_engine(f"sqlite:///{old_db}").dispose()
    with closing(sqlite3.connect(old_db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00d'")
    before = db_fingerprint(old_db)
    with pytest.raises(ConfigError, match="revision f00d, newer than this digestbot's 000"):
        make_engine(f"sqlite:///{old_db}")
    assert db_fingerprint(old_db) == before


def test_a_database_older_than_0_1_0_is_refused_untouched(old_db: Path) -> None:
    """Without the 0.1.0 tables there is no revision to start from: refused, not guessed."""
    with closing(sqlite3.connect(old_db)) as conn, conn:
        conn.execute("ALTER TABLE papers DROP COLUMN sent_mark")
    before = db_fingerprint(old_db)
    with pytest.raises(ConfigError, match=r"older than 0\.1\.0"):
        make_engine(f"sqlite:///{old_db}")
    assert db_fingerprint(old_db) == before


def test_a_revision_that_fails_leaves_the_database_at_the_one_before(old_db: Path) -> None:
    """Each revision is one transaction: one that fails half-way changes nothing of its own."""
    with closing(sqlite3.connect(old_db)) as conn, conn:
        conn.execute("UPDATE deliveries SET status = 'lost' WHERE id = 1")  # breaks a CHECK
    before = state(old_db)
    with pytest.raises(ConfigError, match="cannot upgrade the database past revision 0001"):
        make_engine(f"sqlite:///{old_db}")
    assert rows(old_db, "SELECT version_num FROM alembic_version") == [("0001",)]
    assert state(old_db) == before


def no_differences(engine: Engine) -> list[Any]:
    with engine.connect() as connection:
        return list(compare_metadata(MigrationContext.configure(connection), SQLModel.metadata))


def test_the_migrations_make_exactly_the_tables_of_the_models(engine: Engine) -> None:
    """An autogenerate against a new database finds nothing to do."""
    assert no_differences(engine) == []


def test_the_upgraded_0_1_0_database_has_exactly_the_tables_of_the_models(opened: Engine) -> None:
    """An autogenerate against the upgraded 0.1.0 database finds nothing to do."""
    assert no_differences(opened) == []


def test_the_upgraded_tables_enforce_their_states(opened: Engine) -> None:
    """A delivery state outside the known ones is refused by the database itself."""
    with pytest.raises(Exception, match="CHECK constraint failed"), opened.begin() as conn:
        conn.execute(text("UPDATE deliveries SET status = 'lost' WHERE id = 1"))
