"""Tests for the daemon lock: a flock beside a SQLite file, a PostgreSQL advisory lock on a
session of its own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
from helpers import advisory_holders, wait_for
from sqlalchemy import Engine

from digestbot.errors import DigestbotError
from digestbot.settings import Settings
from digestbot.store.engine import WRITE_LOCK, make_engine
from digestbot.store.lock import DAEMON_LOCK, LockTaken, PlanningLock, daemon_lock, lock_path


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


def test_a_run_waits_for_the_planning_lock_until_the_planner_before_it_lets_go(
    database_url: str,
) -> None:
    """The planning lock is exclusive across engines: a second taker waits, is refused once
    its wait runs out, and gets it as soon as the first releases it."""
    first, second = make_engine(database_url), make_engine(database_url)
    try:
        holder = PlanningLock(first)
        holder.acquire()
        waiter = PlanningLock(second, wait=0.3)
        with pytest.raises(DigestbotError, match="deciding emails"):
            waiter.acquire()
        holder.release()
        waiter.acquire()
        waiter.release()
    finally:
        first.dispose()
        second.dispose()


def test_the_planning_lock_dies_with_its_holder(database_url: str, tmp_path: Path) -> None:
    """A process killed while planning frees the lock: the next run plans at once."""
    script = tmp_path / "hold.py"
    script.write_text(
        "import sys, time\n"
        "from digestbot.store.engine import make_engine\n"
        "from digestbot.store.lock import PlanningLock\n"
        "lock = PlanningLock(make_engine(sys.argv[1]))\n"
        "lock.acquire()\n"
        "print('held', flush=True)\n"
        "time.sleep(60)\n"
    )
    holder = subprocess.Popen(
        [sys.executable, str(script), database_url], stdout=subprocess.PIPE, text=True
    )
    engine = make_engine(database_url)
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        with pytest.raises(DigestbotError):
            PlanningLock(engine, wait=0.2).acquire()
        holder.kill()
        holder.wait()
        lock = PlanningLock(engine, wait=10.0)
        lock.acquire()
        lock.release()
    finally:
        holder.kill()
        holder.communicate()
        engine.dispose()
