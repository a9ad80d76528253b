"""Tests for `digestbot worker`, `run --no-work` and the workers in `status`: exit codes,
one-line refusals on SQLite, and what status lists on PostgreSQL."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from helpers import host_environment, prepare
from sqlalchemy import Engine

from digestbot.schedule import tasks
from digestbot.settings import Settings

AT = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def digestbot(database_url: str, folder: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = host_environment()
    env.update(DIGESTBOT_DATABASE_URL=database_url, DIGESTBOT_TRANSPORT="file")
    return subprocess.run(
        [sys.executable, "-m", "digestbot", *args],
        env=env,
        cwd=folder,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_worker_on_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    """Workers share a PostgreSQL database: on SQLite `worker` exits 1 and says why."""
    shown = digestbot(f"sqlite:///{tmp_path / 'bot.db'}", tmp_path, "worker")
    assert shown.returncode == 1, shown.stderr
    (line,) = shown.stderr.splitlines()
    assert line.startswith("Error: workers share a PostgreSQL database; DIGESTBOT_DATABASE_URL")
    assert "use `digestbot run`" in line


def test_run_no_work_on_sqlite_is_refused_in_one_line(tmp_path: Path) -> None:
    """`run --no-work` needs workers, so PostgreSQL: on SQLite it exits 1 before starting."""
    (tmp_path / "subscriptions.yaml").write_text("subscribers: []\n")
    shown = digestbot(f"sqlite:///{tmp_path / 'bot.db'}", tmp_path, "run", "--no-work")
    assert shown.returncode == 1, shown.stderr
    (line,) = shown.stderr.splitlines()
    assert line.startswith("Error: --no-work needs PostgreSQL")


def test_status_lists_live_workers_and_slices_by_state(
    pg_settings: Settings, pg_engine: Engine, tmp_path: Path
) -> None:
    """A live worker shows with its counts, a silent one does not; slices by state, and a
    failed slice with why."""
    prepare(pg_engine, AT - timedelta(hours=2), count=3)
    now = datetime.now(UTC)
    tasks.register(pg_engine, "host-a:101", now=now)
    tasks.beat(pg_engine, "host-a:101", now=now, slices=12, emails=3456)
    tasks.register(pg_engine, "host-b:202", now=now - timedelta(hours=1))
    tasks.make_round(pg_engine, "digest", at=AT, size=1, now=AT)
    for _ in range(tasks.MAX_ATTEMPTS):
        task = tasks.claim(pg_engine, by="host-a:101", now=now, lease=timedelta(minutes=1))
        assert task is not None and task.first_id == 1
        tasks.give_back(pg_engine, task, by="host-a:101", now=now, error="KeyError: 'x'")
    shown = digestbot(pg_settings.database_url, tmp_path, "status")
    assert shown.returncode == 0, shown.stderr
    assert "host-a:101" in shown.stdout and "3456" in shown.stdout
    assert "host-b:202" not in shown.stdout
    assert "Slices: 2 waiting, 0 working, 0 done, 1 failed." in shown.stdout
    said = " ".join(shown.stdout.split())  # the line is wrapped to the terminal
    assert "slice 1-1 of the digest round" in said
    assert "failed 5 times: KeyError: 'x'" in said
