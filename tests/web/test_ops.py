"""Tests for what operators see of the site: /healthz, /metrics, and the pages of unknown
paths, oversized bodies and failures (real uvicorn on loopback, real SQLite)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import SmtpServer, db_fingerprint
from helpers import prepare, rows
from prometheus_client.parser import text_string_to_metric_families
from served import KEY, ONE_CLICK, serving
from sqlalchemy import Engine, create_engine

from digestbot import service, tokens
from digestbot.rules.subscribers import active_subscribers
from digestbot.schedule import ledger
from digestbot.settings import Settings
from digestbot.store.lock import daemon_lock


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of a Prometheus text page: (name, labels) -> value."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_healthz_says_the_database_answers_and_whether_the_daemon_runs(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """200 with the daemon `not running`, then `running` while a run holds its lock."""
    with serving(settings, engine) as site:
        alone = httpx.get(f"{site.url}/healthz")
        with daemon_lock(engine):
            ledger.take_lease(engine, now=clock)
            running = httpx.get(f"{site.url}/healthz")
    assert alone.status_code == running.status_code == 200
    assert alone.json() == {"database": "ok", "daemon": "not running"}
    assert running.json() == {"database": "ok", "daemon": "running"}


def test_healthz_is_503_when_the_database_does_not_answer(
    settings: Settings, tmp_path: Path
) -> None:
    """A database file that cannot be opened makes /healthz answer 503, not a traceback."""
    broken = create_engine(f"sqlite:///{tmp_path / 'gone' / 'digestbot.db'}")
    try:
        with serving(settings, broken) as site:
            answer = httpx.get(f"{site.url}/healthz")
    finally:
        broken.dispose()
    assert answer.status_code == 503
    assert answer.json() == {"database": "unavailable", "daemon": "unknown"}


def test_metrics_count_deliveries_sends_ingest_age_unsubscribes_and_votes(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """After a send to two readers, an ingest an hour ago, one unsubscribe and one vote,
    /metrics says so in Prometheus text."""
    prepare(engine, clock, count=2)
    ledger.record_source_run(engine, "hf-daily", now=clock - timedelta(hours=1), new=3)
    with serving(smtp_settings, engine, clock=clock) as site:
        asyncio.run(service.send_now(engine, site.settings, now=clock))
        first, second = active_subscribers(engine)
        service.unsubscribe(engine, first.email, now=clock, via="link")
        voted = tokens.vote_url(site.url, KEY, second.id, _a_sent_paper(engine), "down", "d")
        assert httpx.post(voted).status_code == 200
        answer = httpx.get(f"{site.url}/metrics")
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    got = samples(answer.text)
    assert got[("digestbot_deliveries", (("state", "sent"),))] == 2
    assert got[("digestbot_deliveries", (("state", "cancelled"),))] == 0
    assert got[("digestbot_emails_sent_total", ())] == 2
    assert got[("digestbot_source_last_success_age_seconds", (("source", "hf-daily"),))] == 3600
    assert got[("digestbot_suppressed_addresses", ())] == 1
    assert got[("digestbot_votes", (("vote", "down"),))] == 1
    assert got[("digestbot_votes", (("vote", "up"),))] == 0


def _a_sent_paper(engine: Engine) -> str:
    return rows(engine)[0].paper_ids[0]


def test_an_unknown_path_is_a_404_page(engine: Engine, settings: Settings) -> None:
    """Unknown paths and methods answer an HTML page of their own, never a traceback."""
    with serving(settings, engine) as site:
        missing = httpx.get(f"{site.url}/wp-admin/../etc/passwd")
        wrong = httpx.delete(f"{site.url}/healthz")
    assert missing.status_code == 404 and "Not found" in missing.text
    assert wrong.status_code == 405 and "Not allowed" in wrong.text
    for page in (missing, wrong):
        assert page.headers["content-type"].startswith("text/html")
        assert "Traceback" not in page.text


def _chunks(size: int) -> Iterator[bytes]:
    for _ in range(size // 1024):
        yield b"vote=up&" + b"x" * 1016


def test_a_body_over_4_kib_is_a_413_page_and_changes_nothing(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A long body, announced by Content-Length or sent in chunks, is refused with a 413
    (a page of ours when it grew too long while read) before anything is recorded."""
    prepare(engine, clock, count=1)
    reader = active_subscribers(engine)[0]
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    before = db_fingerprint(path)
    with serving(settings, engine) as site:
        gone = tokens.unsubscribe_url(site.url, KEY, reader.id)
        paper = service.plan_digests(engine, settings, now=clock)[0].items[0].paper.id
        vote = tokens.vote_url(site.url, KEY, reader.id, paper, "up", "d")
        announced = httpx.post(gone, content=b"List-Unsubscribe=One-Click" + b"&x" * 4096)
        chunked = httpx.post(vote, content=_chunks(8192), headers=ONE_CLICK)
    assert announced.status_code == chunked.status_code == 413
    assert "Too large" in chunked.text
    assert db_fingerprint(path) == before


def test_a_failure_is_a_plain_500_page_and_is_logged(
    settings: Settings, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """On a database without digestbot's tables, a vote link fails: the reader gets a 500
    page that shows nothing of the error."""
    bare = create_engine(f"sqlite:///{tmp_path / 'bare.db'}")
    try:
        with serving(settings, bare) as site:
            answer = httpx.get(tokens.vote_url(site.url, KEY, 1, "p", "up", "d"))
    finally:
        bare.dispose()
    assert answer.status_code == 500 and "Something went wrong" in answer.text
    assert any("no such table" in r.getMessage() + str(r.exc_info) for r in caplog.records)
    for leak in ("Traceback", "OperationalError", "no such table", "papers"):
        assert leak not in answer.text
