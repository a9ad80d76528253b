"""Tests for the daemon's arXiv lookups: a page dropped into a folder source is looked up
after its ingest, and `authors:` and `categories:` alert rules then select its papers."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from arxivapi import ArxivApi, load_corpus
from conftest import LISTING_000, SmtpServer
from helpers import SENDER, wait_for

from digestbot.ingest.enrichstore import RUN_NAME
from digestbot.ingest.papers import papers_seen_since
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import load_subscriptions
from digestbot.schedule import ledger
from digestbot.store.engine import make_engine


def test_a_dropped_page_is_looked_up_and_alerted_by_author_and_category(
    tmp_path: Path, smtp_server: SmtpServer, arxiv_api: ArxivApi
) -> None:
    """A running daemon ingests a saved page from its folder source, looks its papers up on
    the (loopback) arXiv API, and alerts a reader whose rules name an author and a
    category the page itself never printed."""
    entry = next(
        e
        for e in load_corpus()
        if e["listing"] == LISTING_000.name
        and not e["decoy"]
        and not e["withhold"]
        and "cs.RO" in e["categories"]
    )
    author = entry["authors"][0]
    drops = tmp_path / "drops"
    drops.mkdir()
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(
        'sources:\n  - kind: folder\n    path: drops\n    schedule: "* * * * * *"\n'
        "subscribers:\n"
        "  - email: alice@example.org\n    rules:\n"
        f'      - authors: ["{author}"]\n        mode: alert\n'
        "  - email: bob@example.org\n    rules:\n"
        "      - categories: [cs.RO]\n        mode: alert\n"
    )
    db = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{db}")
    sync_subscriptions(
        engine, load_subscriptions(subscriptions), now=datetime.now(UTC) - timedelta(days=1)
    )
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
        "DIGESTBOT_ARXIV_API_BASE_URL": arxiv_api.base_url,
        "DIGESTBOT_ARXIV_API_DELAY": "0.1",
        "DIGESTBOT_ENRICH": "true",
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "digestbot", "run"], env=env, stderr=subprocess.PIPE, text=True
    )
    try:
        assert wait_for(lambda: f"folder:{drops}" in ledger.source_runs(engine), 30)
        shutil.copyfile(LISTING_000, drops / "saved page.txt")
        assert wait_for(lambda: len(smtp_server.inbox.messages) >= 2, 60)
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=20)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    to = {str(m["To"]): m for m in smtp_server.inbox.messages}
    alice = to["alice@example.org"].get_body(("plain",))
    assert alice is not None
    text = " ".join(alice.get_content().split())
    assert entry["listing_title"].split(":")[0] in text
    assert f"https://arxiv.org/abs/{entry['id']}" in text, text
    assert "bob@example.org" in to
    stored = {p.title: p for p in papers_seen_since(engine, None)}
    assert stored[entry["listing_title"]].arxiv_id == entry["id"]
    run = ledger.source_runs(engine)[RUN_NAME]
    assert run.error is None and run.new_papers > 30
    assert "arXiv lookups: 39 looked up" in log, log
    engine.dispose()
