"""Tests for the versioned schema on the real PostgreSQL cluster: the same tables as the
models, and 0.1.0's JSON text turned into JSONB with nothing lost."""

from __future__ import annotations

import asyncio
import json
import sqlite3
from collections.abc import Iterator
from contextlib import closing
from typing import Any

import pytest
from sqlalchemy import Engine, create_engine, text
from test_migrations import AFTER, RELEASE_0_1_0, no_differences

from digestbot import service
from digestbot.settings import Settings
from digestbot.store import migrate
from digestbot.store.engine import make_engine

# Parents before children, as the foreign keys need them.
TABLES = (
    "subscribers", "papers", "rules", "deliveries", "delivery_messages", "sent_papers",
    "digest_periods", "source_runs",
)  # fmt: skip
BOOLEANS = {"active", "send_empty"}
SERIAL = {"subscribers", "rules", "deliveries", "sent_papers", "digest_periods"}


def copy_release_0_1_0(engine: Engine) -> None:
    """The 0.1.0 fixture's rows, inserted as 0.1.0 wrote them on PostgreSQL (JSON as text,
    sequences past the highest id)."""
    with closing(sqlite3.connect(RELEASE_0_1_0)) as source, engine.begin() as target:
        for table in TABLES:
            cursor = source.execute(f"SELECT * FROM {table}")
            names = [d[0] for d in cursor.description]
            for row in cursor:
                values = {
                    n: bool(v) if n in BOOLEANS else v for n, v in zip(names, row, strict=True)
                }
                columns = ", ".join(names)
                target.execute(
                    text(f"INSERT INTO {table} ({columns}) VALUES (:{', :'.join(names)})"),
                    values,
                )
            if table in SERIAL:
                target.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) "
                         f"FROM {table}")
                )  # fmt: skip


@pytest.fixture
def pg_0_1_0(pg_settings: Settings) -> Iterator[str]:
    """A PostgreSQL database at revision 0001 holding the 0.1.0 fixture's rows."""
    url = pg_settings.database_url.replace("postgresql://", "postgresql+psycopg://")
    bare = create_engine(url)
    migrate.upgrade(bare, to=migrate.FIRST)
    copy_release_0_1_0(bare)
    bare.dispose()
    yield pg_settings.database_url


def test_the_migrations_make_exactly_the_tables_of_the_models_on_postgresql(
    pg_engine: Engine,
) -> None:
    """An autogenerate against a new PostgreSQL database finds nothing to do."""
    assert no_differences(pg_engine) == []


def papers(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        found = conn.execute(text("SELECT id, authors, links, sources FROM papers ORDER BY id"))
        return [tuple(row) for row in found]


def test_a_0_1_0_database_on_postgresql_upgrades_its_json_text_with_nothing_lost(
    pg_0_1_0: str, pg_settings: Settings
) -> None:
    """JSON kept as text becomes JSONB with the same values; a send-now afterwards repeats
    no paper a reader already had."""
    with closing(sqlite3.connect(RELEASE_0_1_0)) as conn:
        expected = [
            (i, json.loads(a), json.loads(lk), json.loads(s))
            for i, a, lk, s in conn.execute(
                "SELECT id, authors, links, sources FROM papers ORDER BY id"
            )
        ]
        had = set(conn.execute("SELECT subscriber_id, paper_id FROM sent_papers"))
    engine = make_engine(pg_0_1_0)
    try:
        assert migrate.current(engine) == migrate.head()
        assert no_differences(engine) == []
        assert papers(engine) == expected
        asyncio.run(service.send_now(engine, pg_settings, now=AFTER))
        with engine.connect() as conn:
            new = conn.execute(text("SELECT subscriber_id, paper_ids FROM deliveries WHERE id > 8"))
            repeated = [(s, p) for s, ids in new for p in ids if (s, p) in had]
    finally:
        engine.dispose()
    assert repeated == []
