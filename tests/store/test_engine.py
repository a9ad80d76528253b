"""Tests for the storage engine settings."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import Engine, text
from sqlmodel import Session

from digestbot.errors import ConfigError, StoreError
from digestbot.store.engine import (
    BUSY_TIMEOUT_MS,
    make_engine,
)
from digestbot.store.tables import PaperRow


def test_sqlite_runs_in_wal_mode_with_a_busy_timeout(engine: Engine) -> None:
    """Readers never block the writer, and a busy writer is waited for, not failed."""
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == BUSY_TIMEOUT_MS


def test_freed_pages_are_zeroed_only_where_that_costs_no_extra_writes(engine: Engine) -> None:
    """secure_delete is FAST (2), not the 1 of builds like Debian's, so dropping old stored
    messages does not write every freed page full of zeros."""
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA secure_delete")).scalar() == 2


def test_naive_datetimes_are_refused(engine: Engine) -> None:
    """Every stored time is timezone-aware, so comparisons never mix naive and aware."""
    row = PaperRow(id="x", title="t", norm_title="t", abstract="a", first_seen=datetime(2026, 1, 1))
    with Session(engine) as session, pytest.raises(Exception, match="timezone-aware"):
        session.add(row)
        session.commit()


def test_an_unusable_database_url_is_one_clear_error(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A folder that does not exist gives a clear error, not a traceback."""
    with pytest.raises(StoreError, match="cannot open the database"):
        make_engine(f"sqlite:///{tmp_path / 'missing' / 'db.sqlite'}")


def test_a_url_whose_driver_is_missing_is_a_clear_error() -> None:
    """A database URL needing an uninstalled driver says which and how to get one."""
    with pytest.raises(ConfigError, match="needs a database driver that is not installed"):
        make_engine("mysql://reader@127.0.0.1/digestbot")
