"""Tests for folder sources under `digestbot run`: a page dropped into the folder is ingested
on the source's schedule, looked up on arXiv and alerted; a folder that is not there fails
only its own runs."""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from arxivapi import ArxivApi, load_corpus
from conftest import LISTING_000, SmtpServer
from helpers import SENDER, host_environment, wait_for
from sqlalchemy import Engine

from digestbot.ingest.enrichstore import RUN_NAME
from digestbot.ingest.papers import papers_seen_since
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


FOLDER_SOURCE = 'sources:\n  - kind: folder\n    path: drops\n    schedule: "* * * * * *"\n'


def start_daemon(
    tmp_path: Path, smtp_server: SmtpServer, subscribers: str, **variables: str
) -> tuple[subprocess.Popen[str], Engine]:
    """A real `digestbot run`, started in another folder, on a new database whose
    subscriptions file has a folder source `drops` (beside it, checked every second) and
    `subscribers`; returns once it has run that source."""
    (tmp_path / "drops").mkdir()
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(FOLDER_SOURCE + subscribers)
    db = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{db}")
    yesterday = datetime.now(UTC) - timedelta(days=1)
    sync_subscriptions(engine, load_subscriptions(subscriptions), now=yesterday)
    env = {
        **host_environment(),
        "DIGESTBOT_DATABASE_URL": f"sqlite:///{db}",
        "DIGESTBOT_SUBSCRIPTIONS": str(subscriptions),
        "DIGESTBOT_SMTP_HOST": smtp_server.host,
        "DIGESTBOT_SMTP_PORT": str(smtp_server.port),
        "DIGESTBOT_SMTP_TLS": "none",
        "DIGESTBOT_FROM_ADDRESS": SENDER,
        "DIGESTBOT_TICK_SECONDS": "1",
        **variables,
    }
    # Started elsewhere: `path: drops` is beside the subscriptions file, not the working folder.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    command = [sys.executable, "-m", "digestbot", "run"]
    daemon = subprocess.Popen(command, env=env, cwd=elsewhere, stderr=subprocess.PIPE, text=True)
    if not wait_for(lambda: f"folder:{tmp_path / 'drops'}" in ledger.source_runs(engine), 30):
        daemon.kill()
        raise AssertionError(daemon.communicate()[1])
    return daemon, engine


def stop(daemon: subprocess.Popen[str]) -> str:
    """SIGTERM, which must stop the daemon with exit 0; its log."""
    try:
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=20)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    return log


def test_a_page_dropped_into_a_folder_source_is_ingested_and_alerted(
    tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """A saved page copied into the folder while the daemon runs is ingested, logged per
    file, and an alert rule's subscriber gets an alert on the SMTP server."""
    daemon, engine = start_daemon(tmp_path, smtp_server, ALERT_READER)
    drops = tmp_path / "drops"
    shutil.copyfile(LISTING_000, drops / "saved page.txt")
    arrived = wait_for(lambda: len(smtp_server.inbox.messages) >= 1, 45)
    log = stop(daemon)
    assert arrived, log
    (message,) = smtp_server.inbox.messages
    assert str(message["Subject"]).startswith("Alert: ") and "Diffusion" in str(message["Subject"])
    name = f"folder:{drops}"
    assert f"ingest {name}: {drops / 'saved page.txt'}: 39 new, 0 known" in log, log
    assert "alerts: 1 queued" in log
    run = ledger.source_runs(engine)[name]
    assert run.error is None and run.failures == 0
    engine.dispose()


def test_a_dropped_page_is_looked_up_and_alerted_by_author_and_category(
    tmp_path: Path, smtp_server: SmtpServer, arxiv_api: ArxivApi
) -> None:
    """The daemon looks a dropped page's papers up on the (loopback) arXiv API after the
    ingest, and alerts readers whose rules name an author and a category the page itself
    never printed."""
    entry = next(
        e
        for e in load_corpus()
        if e["listing"] == LISTING_000.name
        and not (e["decoy"] or e["withhold"])
        and "cs.RO" in e["categories"]
    )
    readers = (
        "subscribers:\n"
        "  - email: alice@example.org\n    rules:\n"
        f'      - authors: ["{entry["authors"][0]}"]\n        mode: alert\n'
        "  - email: bob@example.org\n    rules:\n"
        "      - categories: [cs.RO]\n        mode: alert\n"
    )
    api = {"DIGESTBOT_ARXIV_API_BASE_URL": arxiv_api.base_url, "DIGESTBOT_ENRICH": "true"}
    daemon, engine = start_daemon(
        tmp_path, smtp_server, readers, DIGESTBOT_ARXIV_API_DELAY="0.1", **api
    )
    shutil.copyfile(LISTING_000, tmp_path / "drops" / "saved page.txt")
    arrived = wait_for(lambda: len(smtp_server.inbox.messages) >= 2, 60)
    log = stop(daemon)
    assert arrived, log
    to = {str(m["To"]): m for m in smtp_server.inbox.messages}
    alice = to["alice@example.org"].get_body(("plain",))
    assert alice is not None
    text = " ".join(alice.get_content().split())
    assert entry["listing_title"].split(":")[0] in text
    assert f"arXiv: https://arxiv.org/abs/{entry['id']}" in text, text
    assert "bob@example.org" in to
    stored = {p.title: p for p in papers_seen_since(engine, None)}
    assert stored[entry["listing_title"]].arxiv_id == entry["id"]
    run = ledger.source_runs(engine)[RUN_NAME]
    assert run.error is None and run.new_papers > 30
    assert "arXiv lookups: 39 looked up" in log, log
    engine.dispose()


async def test_a_folder_not_there_yet_fails_only_its_own_runs(
    settings: Settings, engine: Engine, tmp_path: Path
) -> None:
    """A file naming a folder that does not exist (a drive not mounted yet) still loads: the
    other sources keep their jobs, and that source's run fails with a recorded error until
    the folder appears."""
    path = tmp_path / "subscriptions.yaml"
    (tmp_path / "drops").mkdir()
    path.write_text(
        "sources:\n  - kind: folder\n    path: drops\n  - kind: folder\n    path: later\n"
        + ALERT_READER
    )
    daemon = Daemon(settings.model_copy(update={"subscriptions": path}), engine)
    assert daemon.reload(now=datetime.now(UTC))
    assert daemon.config is not None
    jobs = {j.id for j in daemon.scheduler.get_jobs()}
    assert {f"ingest folder:{tmp_path / name}" for name in ("drops", "later")} <= jobs
    drops, later = daemon.config.sources
    assert await daemon.ingest(drops) is None
    error = await daemon.ingest(later)
    assert error is not None and f"{tmp_path / 'later'}" in error
    assert ledger.source_runs(engine)[f"folder:{tmp_path / 'later'}"].failures == 1


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
