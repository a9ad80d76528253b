"""Tests for `digestbot status`: against a real daemon process, and at 80 columns."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conftest import LISTING_000, free_port
from helpers import ALICE_YAML, cli, host_environment, wait_for
from rich.cells import cell_len

from digestbot.schedule import ledger
from digestbot.settings import Settings
from digestbot.store.engine import make_engine

READER = """\
subscribers:
  - email: alice@example.org
    rules:
      - any: [transformer]
"""


def test_status_says_a_killed_daemon_is_not_running_and_when_it_was_last_seen(
    tmp_path: Path,
) -> None:
    """After kill -9 the lease row stays, yet status says not running, and since when."""
    (tmp_path / "subscriptions.yaml").write_text(READER, encoding="utf-8")
    env = host_environment()
    env.update(
        DIGESTBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        DIGESTBOT_SUBSCRIPTIONS=str(tmp_path / "subscriptions.yaml"),
        DIGESTBOT_TICK_SECONDS="1",
    )

    def status() -> str:
        shown = subprocess.run(
            [sys.executable, "-m", "digestbot", "status"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        return shown.stdout

    # The daemon needs a database: loading the subscriptions makes it, as a person would.
    subprocess.run(
        [sys.executable, "-m", "digestbot", "subscriptions", "sync"],
        env=env,
        cwd=tmp_path,
        check=True,
        capture_output=True,
        timeout=60,
    )
    daemon = subprocess.Popen(
        [sys.executable, "-m", "digestbot", "run"],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert wait_for(lambda: "Scheduler: running" in status(), 45)
        daemon.send_signal(signal.SIGKILL)
        daemon.wait(timeout=20)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    shown = status()
    assert "Scheduler: not running; last seen as" in shown, shown
    assert f":{daemon.pid} at " in shown and "UTC" in shown
    assert "Scheduler: running" not in shown


def finished(process: subprocess.Popen[str]) -> int:
    """The exit status of `process`, its pipes read and closed."""
    process.communicate(timeout=60)
    return process.returncode


def test_status_at_80_columns_names_each_source_and_who_waits_for_what(
    tmp_path: Path, settings: Settings
) -> None:
    """After an unreachable server, at COLUMNS=80: no line is wider, a long source name is
    shown whole, and each held-back email shows its recipient and why it waits."""
    closed = free_port()
    (tmp_path / "s.yaml").write_text(ALICE_YAML, encoding="utf-8")
    for args in (("ingest", str(LISTING_000)), ("subscriptions", "sync", "s.yaml")):
        assert finished(cli(settings, closed, *args)) == 0
    assert finished(cli(settings, closed, "send-now")) == 1
    name = "feed:https://papers.example.org/a/rather/long/path/to/the/feed.xml"
    engine = make_engine(settings.database_url)
    ledger.record_source_run(engine, name, now=datetime.now(UTC), error="HTTP 503")
    engine.dispose()
    shown, problems = cli(settings, closed, "status", extra={"COLUMNS": "80"}).communicate(
        timeout=60
    )
    assert problems == "", problems
    lines = shown.splitlines()
    assert all(cell_len(line) <= 80 for line in lines), max(lines, key=cell_len)
    assert f"{name} failing (1 in a row): HTTP 503" in " ".join(shown.split())
    entry = shown.split("Needs attention (1 email)\n", 1)[1]
    assert entry.startswith("  #1 pending digest to alice@example.org\n      0 attempts\n")
    assert f"      cannot connect to the SMTP server 127.0.0.1:{closed}" in entry
