"""Tests for what `send-now --dry-run` and `preview` show of emails already queued."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LISTING_000
from helpers import ALICE_YAML, SENDER
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.store.engine import make_engine


class _TryLater:
    """Answers every recipient with a temporary failure."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        return "451 4.3.0 Try again later"


@pytest.fixture
def retried(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_factory):  # type: ignore[no-untyped-def]
    """A CLI whose first send-now got 451 for alice: her digest waits as a retry."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", "127.0.0.1")
    monkeypatch.setenv("DIGESTBOT_SMTP_PORT", str(smtp_factory(_TryLater())))
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "none")
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)
    (tmp_path / "s.yaml").write_text(ALICE_YAML, encoding="utf-8")
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(app, list(args), catch_exceptions=False)

    invoke("ingest", str(LISTING_000))
    invoke("subscriptions", "sync", str(tmp_path / "s.yaml"))
    assert "retry" in invoke("send-now").stdout  # type: ignore[attr-defined]
    return invoke


def test_dry_run_json_lists_a_queued_retry_beside_the_new_papers(retried) -> None:  # type: ignore[no-untyped-def]
    """After a 451 the dry run shows the retry, its papers and its next attempt."""
    (plan,) = json.loads(retried("send-now", "--dry-run", "--json").stdout)
    assert plan["papers"] == []
    (row,) = plan["queued"]
    assert row["status"] == "retry" and row["kind"] == "digest"
    assert row["papers"] and set(row["papers"][0]) == {"id", "title"}
    assert row["next_attempt_at"].endswith(" UTC")


def test_dry_run_text_says_what_is_queued(retried) -> None:  # type: ignore[no-untyped-def]
    """The plain dry run names the queued retry instead of showing nothing."""
    shown = retried("send-now", "--dry-run").stdout
    assert "alice@example.org: 0 new papers" in shown
    assert "  queued: retry digest, " in shown and "next attempt " in shown


def test_preview_shows_a_queued_retry(retried, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """preview says the digest is queued for a retry and writes its stored bytes."""
    result = retried("preview", "alice@example.org")
    assert "Nothing new for alice@example.org: send-now" not in result.stdout
    assert "(queued, retry digest, " in result.stdout
    assert "Subject: " in result.stdout
    assert "beyond the queued email(s)" in result.stdout
    retried("preview", "alice@example.org", "--out", str(tmp_path / "q.eml"))
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    with engine.connect() as connection:
        stored = connection.exec_driver_sql("SELECT raw FROM delivery_messages").scalar_one()
    engine.dispose()
    assert (tmp_path / "q.eml").read_bytes() == stored
