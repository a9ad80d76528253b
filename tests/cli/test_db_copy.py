"""Tests for `digestbot db copy --to URL`: a SQLite database moved into PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from conftest import Postgres, db_fingerprint
from helpers import queued
from sqlalchemy import Engine, inspect, select
from sqlmodel import SQLModel

from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.lock import daemon_lock

Run = Callable[..., Any]


def contents(url: str) -> dict[str, Any]:
    """The database's tables and every row of each, sorted: equal means unchanged."""
    engine = make_engine(url, upgrade=False)
    try:
        names = sorted(inspect(engine).get_table_names())
        tables = [t for t in SQLModel.metadata.sorted_tables if t.name in names]
        with engine.connect() as connection:
            rows = {
                t.name: sorted(map(tuple, connection.execute(select(t))), key=repr) for t in tables
            }
    finally:
        engine.dispose()
    return {"tables": names, "rows": rows}


def errors(result: Any) -> list[str]:
    return [line for line in result.stderr.splitlines() if line.startswith("Error:")]


@pytest.fixture
def lived_in(engine: Engine, settings: Settings, clock: datetime) -> Engine:
    """The CLI's SQLite database: the fixture listing's papers, three readers and their
    three digests queued in the outbox."""
    queued(engine, settings, clock, count=3)
    return engine


def test_db_copy_moves_the_database_to_postgresql_where_status_works(
    run: Run, lived_in: Engine, pg_settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Rows per table, then a total line; `status` against the copy says what it says of the
    source."""
    target = pg_settings.database_url
    result = run("db", "copy", "--to", target)
    assert result.exit_code == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "papers             39 rows" in lines
    assert "subscribers        3 rows" in lines
    tables = len(SQLModel.metadata.tables)  # every table, the empty ones too
    assert lines[-1].startswith(f"Copied 51 rows in {tables} tables from sqlite:///")
    assert lines[-1].endswith(f" to {target}.")
    assert contents(target)["rows"] == contents(str(lived_in.url))["rows"]
    before = run("status").stdout
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", target)
    status = run("status")
    assert status.exit_code == 0, status.stderr
    # PostgreSQL's status adds its workers and slices; the rest reads the same.
    shared = ("Workers: none live", "Slices: 0 waiting")
    assert [
        x for x in status.stdout.splitlines() if not x.startswith(shared)
    ] == before.splitlines()
    assert "│ pending │ 3      │" in before


def test_db_copy_never_prints_the_targets_password(
    run: Run, lived_in: Engine, pg_settings: Settings, postgres_cluster: Postgres
) -> None:
    """A password in --to shows as *** in the report (the test cluster trusts any)."""
    database = pg_settings.database_url.rsplit("/", 1)[1]
    url = postgres_cluster.url(database).replace("digestbot@", "digestbot:hunter2@")
    result = run("db", "copy", "--to", url)
    assert result.exit_code == 0, result.stderr
    assert "hunter2" not in result.stdout + result.stderr
    assert "digestbot:***@" in result.stdout
    again = run("db", "copy", "--to", url)
    assert again.exit_code == 1
    assert "hunter2" not in again.stdout + again.stderr


def test_db_copy_refuses_a_target_that_has_data(
    run: Run, lived_in: Engine, pg_settings: Settings
) -> None:
    """A second copy into the same target: exit 1, one Error: line, the target as it was."""
    target = pg_settings.database_url
    assert run("db", "copy", "--to", target).exit_code == 0
    before = contents(target)
    result = run("db", "copy", "--to", target)
    assert result.exit_code == 1
    (line,) = errors(result)
    assert "already has rows (in papers, subscribers, deliveries, rules, delivery_messages)" in line
    assert contents(target) == before


def test_db_copy_refuses_to_copy_the_database_into_itself(
    run: Run, lived_in: Engine, settings: Settings, tmp_path: Path
) -> None:
    """The source's own file, named another way (through a symlink): exit 1, nothing changed."""
    (tmp_path / "link").symlink_to(tmp_path)
    file = tmp_path / "digestbot.db"
    before = db_fingerprint(file)
    result = run("db", "copy", "--to", f"sqlite:///{tmp_path / 'link' / 'digestbot.db'}")
    assert result.exit_code == 1
    (line,) = errors(result)
    assert "is the database being copied" in line
    assert db_fingerprint(file) == before


def test_db_copy_refuses_while_digestbot_run_holds_the_source(
    run: Run, lived_in: Engine, pg_settings: Settings
) -> None:
    """A running daemon's lock on the source: one line saying to stop it; the target untouched."""
    target = pg_settings.database_url
    with daemon_lock(lived_in):
        result = run("db", "copy", "--to", target)
    assert result.exit_code == 1
    (line,) = errors(result)
    assert "`digestbot run` is using the database" in line and "stop it first" in line
    assert contents(target) == {"tables": [], "rows": {}}


def test_db_copy_into_a_new_sqlite_file(run: Run, lived_in: Engine, tmp_path: Path) -> None:
    """SQLite to SQLite works too: the new file holds the same rows."""
    target = f"sqlite:///{tmp_path / 'copy.db'}"
    result = run("db", "copy", "--to", target)
    assert result.exit_code == 0, result.stderr
    assert contents(target)["rows"] == contents(str(lived_in.url))["rows"]
