"""Tests for the single-instance lock of `digestbot run`: real processes on a SQLite file and on
PostgreSQL, refused while another holds the lock and started at once after it is killed."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from helpers import advisory_holders, host_environment, wait_for
from sqlalchemy import Engine

from digestbot.errors import ConfigError
from digestbot.schedule import ledger
from digestbot.schedule.daemon import Daemon
from digestbot.settings import Settings
from digestbot.store.engine import make_engine, write_session
from digestbot.store.lock import DAEMON_LOCK, daemon_lock
from digestbot.store.tables import LeaseRow

SUBSCRIPTIONS = """\
subscribers:
  - email: bob@example.org
    send_at: "{send_at}"
    rules:
      - any: [diffusion]
"""
START_TIMEOUT = 30.0


@dataclass
class Run:
    """A `digestbot run` process and the file its log goes to."""

    process: subprocess.Popen[bytes]
    log: Path

    @property
    def owner(self) -> str:
        return f"{socket.gethostname()}:{self.process.pid}"

    def started(self) -> bool:
        """Whether it is running its jobs (it logs `running:` once it holds the lock)."""
        return "running: " in self.log.read_text()


class Runs:
    """Starts `digestbot run` processes on one database; kills any left at the end."""

    def __init__(self, folder: Path, database_url: str) -> None:
        self.folder = folder
        self.started: list[Run] = []
        later = (datetime.now(UTC) + timedelta(hours=6)).strftime("%H:%M")  # nothing to send
        (folder / "subscriptions.yaml").write_text(SUBSCRIPTIONS.format(send_at=later))
        self.env = host_environment()
        self.env.update(
            DIGESTBOT_DATABASE_URL=database_url,
            DIGESTBOT_SUBSCRIPTIONS=str(folder / "subscriptions.yaml"),
        )
        self.command = [sys.executable, "-m", "digestbot", "run"]

    def start(self) -> Run:
        log = self.folder / f"run-{len(self.started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                self.command, env=self.env, cwd=self.folder, stdout=sink, stderr=sink
            )
        run = Run(process, log)
        self.started.append(run)
        return run

    def start_and_wait(self) -> Run:
        run = self.start()
        assert wait_for(lambda: run.started() or run.process.poll() is not None, START_TIMEOUT)
        assert run.started(), run.log.read_text()
        return run

    def refused(self, *options: str) -> subprocess.CompletedProcess[str]:
        """A `run` expected to give up at once."""
        return subprocess.run(
            [*self.command, *options],
            env=self.env,
            cwd=self.folder,
            capture_output=True,
            text=True,
            timeout=30,
        )

    def stop(self, run: Run) -> int:
        run.process.send_signal(signal.SIGTERM)
        return run.process.wait(timeout=20)

    def kill_all(self) -> None:
        for run in self.started:
            if run.process.poll() is None:
                run.process.kill()
                run.process.wait()


@pytest.fixture
def runs(tmp_path: Path, database_url: str) -> Iterator[Runs]:
    """`digestbot run` processes on `database_url`, all stopped by the end of the test."""
    make_engine(database_url).dispose()  # tables first, so no two runs race to create them
    starter = Runs(tmp_path, database_url)
    try:
        yield starter
    finally:
        starter.kill_all()


def lease_owner(database_url: str) -> str | None:
    engine = make_engine(database_url)
    try:
        holder = ledger.lease(engine)
        return holder.owner if holder else None
    finally:
        engine.dispose()


def test_a_lease_row_naming_a_live_process_does_not_stop_a_new_run(
    runs: Runs, database_url: str
) -> None:
    """A row naming a live process on this host (this test's own) is stale when nobody holds
    the lock: the new run overwrites it and starts."""
    now = datetime.now(UTC)
    engine = make_engine(database_url)
    with write_session(engine) as session:
        mine = f"{socket.gethostname()}:{os.getpid()}"
        session.add(LeaseRow(name="run", owner=mine, acquired_at=now, heartbeat_at=now))
    engine.dispose()
    run = runs.start_and_wait()
    assert lease_owner(database_url) == run.owner
    assert runs.stop(run) == 0, run.log.read_text()
    assert lease_owner(database_url) is None


def test_a_second_run_is_refused_while_the_first_holds_the_lock(
    runs: Runs, database_url: str
) -> None:
    """While one `run` lives, another that would only schedule (all of them on SQLite; one
    told not to work on PostgreSQL, where a second `run` works) exits 1 with one error line
    naming the first."""
    first = runs.start_and_wait()
    second = runs.refused(*(["--no-work"] if database_url.startswith("postgresql") else []))
    assert second.returncode == 1
    (line,) = [line for line in second.stderr.splitlines() if line.startswith("Error:")]
    assert line.startswith(
        f"Error: another `digestbot run` ({first.owner}) is using this database since "
    ), line
    assert line.endswith("UTC (stop it first)"), line
    assert first.process.poll() is None and lease_owner(database_url) == first.owner
    assert runs.stop(first) == 0, first.log.read_text()


def test_a_run_starts_at_once_after_the_holder_is_killed_with_sigkill(
    runs: Runs, database_url: str
) -> None:
    """SIGKILL leaves the lease row behind but frees the lock: the next `run` starts and
    takes the row over."""
    first = runs.start_and_wait()
    first.process.kill()
    first.process.wait()
    assert lease_owner(database_url) == first.owner  # the dead process's row stays
    again = runs.start_and_wait()
    assert lease_owner(database_url) == again.owner
    assert runs.stop(again) == 0, again.log.read_text()


async def test_a_run_refused_by_a_holder_without_a_lease_row_names_nobody(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """Between taking the lock and writing its row a holder is anonymous: the refusal says
    only that another run uses the database."""
    settings = settings.model_copy(update={"subscriptions": tmp_path / "s.yaml"})
    settings.subscriptions.write_text(SUBSCRIPTIONS.format(send_at="08:00"))
    holder = make_engine(settings.database_url)
    with daemon_lock(holder), pytest.raises(ConfigError) as refused:
        await Daemon(settings, engine).run()
    holder.dispose()
    assert str(refused.value) == "another `digestbot run` is using this database (stop it first)"
    assert ledger.lease(engine) is None


async def test_a_daemon_stops_at_the_next_tick_once_another_process_took_its_lock(
    pg_settings: Settings, pg_engine: Engine, tmp_path: Path
) -> None:
    """If the lock's session ends (here it is terminated) and another session takes the lock
    before the next tick, that tick stops the daemon and marks the lock as lost."""
    settings = pg_settings.model_copy(update={"subscriptions": tmp_path / "s.yaml"})
    settings.subscriptions.write_text(SUBSCRIPTIONS.format(send_at="08:00"))
    daemon = Daemon(settings, pg_engine)
    with daemon_lock(pg_engine) as lock, psycopg.connect(pg_settings.database_url) as other:
        daemon.lock = lock
        await daemon.tick()
        assert not daemon.halt.is_set()
        other.autocommit = True
        for pid in advisory_holders(other):
            other.execute("SELECT pg_terminate_backend(%s)", (pid,))
        assert wait_for(lambda: not advisory_holders(other), 10)
        taken = other.execute("SELECT pg_try_advisory_lock(%s)", (DAEMON_LOCK,)).fetchone()
        assert taken == (True,)
        await daemon.tick()
    assert daemon.halt.is_set() and daemon.lock_lost
