"""Tests for the daemon lock: a flock beside a SQLite file, a PostgreSQL advisory lock on a
session of its own."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
from helpers import advisory_holders, wait_for
from sqlalchemy import Engine

from digestbot.settings import Settings
from digestbot.store.engine import WRITE_LOCK, make_engine
from digestbot.store.lock import DAEMON_LOCK, LockTaken, daemon_lock, lock_path


def test_the_lock_file_sits_beside_the_database_file(engine: Engine, tmp_path: Path) -> None:
    """`digestbot.db` is locked through `digestbot.db.lock`; an in-memory database has none."""
    assert lock_path(engine) == tmp_path / "digestbot.db.lock"
    memory = make_engine("sqlite://")
    try:
        assert lock_path(memory) is None
        with daemon_lock(memory) as lock:
            assert lock.held()
    finally:
        memory.dispose()


def test_the_daemon_lock_key_is_not_the_write_lock_key() -> None:
    """The daemon's advisory lock never blocks, nor is blocked by, write transactions."""
    assert DAEMON_LOCK != WRITE_LOCK


def test_a_second_holder_is_refused_until_the_first_lets_go(database_url: str) -> None:
    """The lock is exclusive and taken without waiting; released, it can be taken again."""
    first, second = make_engine(database_url), make_engine(database_url)
    try:
        with daemon_lock(first) as lock:
            assert lock.held()
            with pytest.raises(LockTaken), daemon_lock(second):
                pass
        with daemon_lock(second) as lock:
            assert lock.held()
    finally:
        first.dispose()
        second.dispose()


def test_the_advisory_lock_session_sits_idle_and_ends_with_the_lock(
    pg_engine: Engine, pg_settings: Settings
) -> None:
    """The lock's session is not held in a transaction, and is closed when the lock is let go."""
    state = "SELECT state FROM pg_stat_activity WHERE pid = %s"
    with psycopg.connect(pg_settings.database_url, autocommit=True) as other:
        with daemon_lock(pg_engine):
            (holder,) = advisory_holders(other)
            assert other.execute(state, (holder,)).fetchall() == [("idle",)]
        assert advisory_holders(other) == []
        assert wait_for(lambda: not other.execute(state, (holder,)).fetchall(), 10)


def test_a_lock_whose_session_ended_is_taken_again_while_it_is_free(
    pg_engine: Engine, pg_settings: Settings
) -> None:
    """A dropped lock connection (here, terminated by the server) is replaced at the next
    check and the lock taken again, since nobody else took it meanwhile."""
    with (
        psycopg.connect(pg_settings.database_url, autocommit=True) as other,
        daemon_lock(pg_engine) as lock,
    ):
        (dropped,) = advisory_holders(other)
        other.execute("SELECT pg_terminate_backend(%s)", (dropped,))
        assert wait_for(lambda: not advisory_holders(other), 10)
        assert lock.held()
        (again,) = advisory_holders(other)
        assert again != dropped
