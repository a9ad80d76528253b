"""Tests for folder sources under `digestbot run`: a page dropped into the folder is ingested
on the source's schedule and alerted; a folder gone missing from an edit keeps the last
good file in force."""

from __future__ import annotations

import logging
import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import LISTING_000, SmtpServer
from helpers import SENDER, wait_for
from sqlalchemy import Engine

from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import load_subscriptions
from digestbot.schedule import ledger
from digestbot.schedule.daemon import Daemon
from digestbot.settings import Settings
from digestbot.store.engine import make_engine

ALERT_READER = (
    "subscribers:\n  - email: alice@example.org\n    rules:\n"
    "      - any: [diffusion]\n        mode: alert\n"
)


def test_a_page_dropped_into_a_folder_source_is_ingested_and_alerted(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A real `digestbot run` with a folder source on a one-second schedule: a saved page
    copied into the folder while it runs is ingested, logged per file, and an alert rule's
    subscriber gets an alert on the SMTP server; SIGTERM exits 0."""
    drops = tmp_path / "drops"
    drops.mkdir()
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(
        'sources:\n  - kind: folder\n    path: drops\n    schedule: "* * * * * *"\n' + ALERT_READER
    )
    db = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{db}")
    now = datetime.now(UTC)
    sync_subscriptions(engine, load_subscriptions(subscriptions), now=now - timedelta(days=1))
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith("DIGESTBOT_") or k == "DIGESTBOT_ENRICH"
        },
        "DIGESTBOT_DATABASE_URL": f"sqlite:///{db}",
        "DIGESTBOT_SUBSCRIPTIONS": str(subscriptions),
        "DIGESTBOT_SMTP_HOST": smtp_server.host,
        "DIGESTBOT_SMTP_PORT": str(smtp_server.port),
        "DIGESTBOT_SMTP_TLS": "none",
        "DIGESTBOT_FROM_ADDRESS": SENDER,
        "DIGESTBOT_TICK_SECONDS": "1",
        "DIGESTBOT_ENRICH": "false",
    }
    command = [sys.executable, "-m", "digestbot", "run"]
    # Started elsewhere: `path: drops` is beside the subscriptions file, not the working folder.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    daemon = subprocess.Popen(command, env=env, cwd=elsewhere, stderr=subprocess.PIPE, text=True)
    name = f"folder:{drops}"
    try:
        assert wait_for(lambda: name in ledger.source_runs(engine), 30)
        shutil.copyfile(LISTING_000, drops / "saved page.txt")
        assert wait_for(lambda: len(smtp_server.inbox.messages) >= 1, 45)
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=20)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    (message,) = smtp_server.inbox.messages
    assert str(message["Subject"]).startswith("Alert: ") and "Diffusion" in str(message["Subject"])
    assert f"ingest {name}: {drops / 'saved page.txt'}: 39 new, 0 known" in log, log
    assert "alerts: 1 queued" in log
    run = ledger.source_runs(engine)[name]
    assert run.error is None and run.failures == 0
    engine.dispose()


async def test_a_reload_naming_a_missing_folder_keeps_the_last_good_file(
    settings: Settings, engine: Engine, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """An edit whose folder source names a missing folder is logged with its line and not
    applied; the jobs of the last good file stay."""
    path = tmp_path / "subscriptions.yaml"
    daemon_settings = settings.model_copy(update={"subscriptions": path})
    (tmp_path / "drops").mkdir()
    path.write_text("sources:\n  - kind: folder\n    path: drops\n" + ALERT_READER)
    daemon = Daemon(daemon_settings, engine)
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    assert daemon.reload(now=now)
    jobs = {j.id for j in daemon.scheduler.get_jobs()}
    assert f"ingest folder:{tmp_path / 'drops'}" in jobs
    path.write_text("sources:\n  - kind: folder\n    path: gone\n" + ALERT_READER)
    with caplog.at_level(logging.ERROR, logger="digestbot.run"):
        assert not daemon.reload(now=now)
    assert (
        f"subscriptions.yaml:3:5: sources[0].path: folder {tmp_path / 'gone'} does not exist"
        in (caplog.text)
    )
    assert {j.id for j in daemon.scheduler.get_jobs()} == jobs


async def test_a_folder_removed_after_loading_fails_its_run_without_stopping_the_daemon(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """A folder that disappears after the file was loaded (an unmounted drive) makes that
    ingest fail with a recorded error, like an unreachable feed."""
    path = tmp_path / "subscriptions.yaml"
    (tmp_path / "drops").mkdir()
    path.write_text("sources:\n  - kind: folder\n    path: drops\n" + ALERT_READER)
    daemon = Daemon(settings.model_copy(update={"subscriptions": path}), engine)
    daemon.reload(now=datetime.now(UTC))
    assert daemon.config is not None
    (tmp_path / "drops").rmdir()
    failed = await daemon.ingest(daemon.config.sources[0])
    assert failed is not None and "no such folder" in failed
    run = ledger.source_runs(engine)[f"folder:{tmp_path / 'drops'}"]
    assert run.failures == 1 and "no such folder" in (run.error or "")
