"""Tests for papers left out by max_papers, through the CLI: they come in the next digests,
and every output says so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import LISTING_000, SmtpServer
from helpers import SENDER
from typer.testing import CliRunner

from digestbot.cli import app

READER = """\
subscribers:
  - email: alice@example.org
    max_papers: 2
    rules:
      - any: [transformer]
"""


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, smtp_server: SmtpServer):  # type: ignore[no-untyped-def]
    """The CLI on a fresh database with a listing, alice (max_papers 2) and a real server."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")
    monkeypatch.setenv("DIGESTBOT_SMTP_HOST", smtp_server.host)
    monkeypatch.setenv("DIGESTBOT_SMTP_PORT", str(smtp_server.port))
    monkeypatch.setenv("DIGESTBOT_SMTP_TLS", "none")
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)
    (tmp_path / "s.yaml").write_text(READER, encoding="utf-8")
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(app, list(args), catch_exceptions=False)

    invoke("ingest", str(LISTING_000))
    invoke("subscriptions", "sync", str(tmp_path / "s.yaml"))
    return invoke


def test_papers_left_out_by_max_papers_come_in_the_next_digests(run, smtp_server) -> None:  # type: ignore[no-untyped-def]
    """Each send-now sends the next two matching papers until all went out, each saying
    how many more will come."""
    (plan,) = json.loads(run("send-now", "--dry-run", "--json").stdout)
    total = len(plan["papers"]) + plan["left_out"]
    assert len(plan["papers"]) == 2 and plan["left_out"] >= 3
    first = run("send-now")
    said = f"{total - 2} matching papers did not fit max_papers: they come in the next digests"
    assert said in first.stdout
    body = " ".join(smtp_server.inbox.messages[0].get_body(("plain",)).get_content().split())
    assert f"{total - 2} more matching papers did not fit in this digest" in body
    assert "They come in your next digests, ranked with the new papers, for up to 7 days" in body
    for _ in range(total):
        if "Nothing new to send" in run("send-now").stdout:
            break
    sent = [m["Message-ID"] for m in smtp_server.inbox.messages]
    assert len(sent) == (total + 1) // 2
    (plan,) = json.loads(run("send-now", "--dry-run", "--json").stdout)
    assert plan["papers"] == [] and plan["left_out"] == 0


def test_carry_over_days_0_drops_them_and_says_so(run, smtp_server, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """With DIGESTBOT_CARRY_OVER_DAYS=0 the email says the rest will not be sent."""
    monkeypatch.setenv("DIGESTBOT_CARRY_OVER_DAYS", "0")
    assert "they will not be sent" in run("send-now").stdout
    body = " ".join(smtp_server.inbox.messages[0].get_body(("plain",)).get_content().split())
    assert "which holds at most 2. They will not be sent." in body
    assert "Nothing new to send" in run("send-now").stdout
