"""Tests for `digestbot status` against a real daemon process."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from helpers import wait_for

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
    env = {k: v for k, v in os.environ.items() if not k.startswith("DIGESTBOT_")}
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
