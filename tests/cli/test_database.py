"""Tests for `digestbot db upgrade` and `db current`, and every command's revision check."""

from __future__ import annotations

import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
from conftest import FIXTURES, db_fingerprint
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.store import migrate


@pytest.fixture
def old_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A copy of the 0.1.0 fixture, as the database of every command here."""
    copy = tmp_path / "digestbot.db"
    shutil.copyfile(FIXTURES / "db" / "digestbot-0.1.0.db", copy)
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{copy}")
    return copy


def run(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_db_current_names_the_revision_and_changes_nothing(old_db: Path) -> None:
    """`db current` on a 0.1.0 database says so and leaves it exactly as it was."""
    before = db_fingerprint(old_db)
    result = run("db", "current")
    assert result.exit_code == 0
    assert "made by digestbot 0.1.0 (revision 0001, not marked yet)" in result.stdout
    assert f"needs {migrate.head()} (opening it upgrades it)" in result.stdout
    assert db_fingerprint(old_db) == before


def test_db_upgrade_upgrades_once_then_has_nothing_to_do(old_db: Path) -> None:
    """The first `db upgrade` says from which revision to which; the second, nothing to do."""
    first = run("db", "upgrade")
    assert first.exit_code == 0
    assert f"Upgraded the database from revision 0001 to {migrate.head()}." in first.stderr
    second = run("db", "upgrade")
    assert second.exit_code == 0
    assert "nothing to do" in second.stdout
    assert f"at revision {migrate.head()}" in run("db", "current").stdout


def test_any_command_upgrades_an_older_database_and_says_so(old_db: Path) -> None:
    """`status` on a 0.1.0 database upgrades it first, with one line on stderr."""
    result = run("status")
    assert result.exit_code == 0
    assert result.stderr.splitlines() == [
        f"Upgraded the database from revision 0001 to {migrate.head()}."
    ]
    assert "Outbox" in result.stdout


def test_a_newer_database_stops_every_command_with_one_line(old_db: Path) -> None:
    """A revision this digestbot does not know: exit 1, one error line, nothing written."""
    run("db", "upgrade")
    with closing(sqlite3.connect(old_db)) as conn, conn:
        conn.execute("UPDATE alembic_version SET version_num = 'f00d'")
    before = db_fingerprint(old_db)
    result = run("send-now")
    assert result.exit_code == 1
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith("Error: the database is at revision f00d, newer than this digestbot's")
    assert "db current" not in line
    assert db_fingerprint(old_db) == before
    assert "newer than this digestbot" in run("db", "current").stdout


def test_db_current_names_a_database_older_than_0_1_0_as_one_it_cannot_upgrade(
    old_db: Path,
) -> None:
    """Without 0.1.0's tables `db current` says what opening it would: it cannot be upgraded."""
    with closing(sqlite3.connect(old_db)) as conn, conn:
        conn.execute("ALTER TABLE papers DROP COLUMN sent_mark")
    before = db_fingerprint(old_db)
    result = run("db", "current")
    assert result.exit_code == 0
    assert "made by a digestbot older than 0.1.0" in result.stdout
    assert "this digestbot cannot upgrade it" in result.stdout
    assert run("status").exit_code == 1
    assert db_fingerprint(old_db) == before
