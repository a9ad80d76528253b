"""Tests for what `send-now` reports: one JSON schema for a dry run and a real run, and a
dry run's text naming each subscriber's papers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conftest import LISTING_000, SmtpServer
from helpers import SENDER
from typer.testing import CliRunner, Result

from digestbot.cli import app

READERS = """\
subscribers:
  - email: alice@example.org
    max_papers: 3
    rules:
      - name: Transformers
        any: [transformer]
  - email: bob@example.org
    rules:
      - any: [axial]
  - email: carol@example.org
    rules:
      - any: [no-paper-says-this]
"""

# The schema both outputs follow: a list of these objects, keys exactly these.
PAPER = {"id": str, "title": str, "score": float, "matched": list, "rules": list, "similar": list}
QUEUED = {"kind": str, "status": str, "papers": list, "next_attempt_at": (str, type(None))}
SUBSCRIBER = {
    "email": str,
    "status": str,
    "papers": list,
    "left_out": int,
    "delivered_to": (str, type(None)),
    "error": (str, type(None)),
    "queued": list,
}
DRY_STATUSES = {"would send", "nothing new", "failed"}
RUN_STATUSES = {"sent", "retry", "failed", "unknown", "nothing new"}


def conforming(obj: Any, shape: dict[str, Any]) -> bool:
    """Whether `obj` is a dict with exactly `shape`'s keys, each of its type."""
    return (
        isinstance(obj, dict)
        and set(obj) == set(shape)
        and all(isinstance(obj[key], kind) for key, kind in shape.items())
    )


def check_report(report: Any, statuses: set[str]) -> None:
    """Fail unless `report` follows the send-now JSON schema with these statuses."""
    assert isinstance(report, list) and report
    for sub in report:
        assert conforming(sub, SUBSCRIBER), sub
        assert sub["status"] in statuses
        assert all(conforming(p, PAPER) for p in sub["papers"])
        assert all(conforming(q, QUEUED) for q in sub["queued"])
        assert all(set(p) == {"id", "title"} for q in sub["queued"] for p in q["papers"])


def mail_through(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    """Send from SENDER through the loopback SMTP server on `port`, without TLS."""
    for name, value in (("HOST", "127.0.0.1"), ("PORT", str(port)), ("TLS", "none")):
        monkeypatch.setenv(f"DIGESTBOT_SMTP_{name}", value)
    monkeypatch.setenv("DIGESTBOT_FROM_ADDRESS", SENDER)


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI on a database in tmp_path with the sample listing and three readers."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")
    (tmp_path / "s.yaml").write_text(READERS, encoding="utf-8")

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    invoke("ingest", str(LISTING_000))
    synced = invoke("subscriptions", "sync", str(tmp_path / "s.yaml"))
    assert synced.exit_code == 0, synced.stderr
    return invoke


def test_dry_run_and_real_run_json_share_one_schema_and_the_same_papers(
    run, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """Both outputs validate against one schema; the real run sends the papers the dry run
    announced, and both count the papers cut by max_papers as `left_out`."""
    mail_through(monkeypatch, smtp_server.port)
    planned = json.loads(run("send-now", "--dry-run", "--json").stdout)
    check_report(planned, DRY_STATUSES)
    result = run("send-now", "--json")
    assert result.exit_code == 0, result.stderr
    sent = json.loads(result.stdout)
    check_report(sent, RUN_STATUSES)
    by_email = {sub["email"]: sub for sub in sent}
    for plan in planned:
        real = by_email[plan["email"]]
        assert [p["id"] for p in real["papers"]] == [p["id"] for p in plan["papers"]]
        assert real["left_out"] == plan["left_out"]
        assert plan["delivered_to"] is None
    alice = by_email["alice@example.org"]
    assert len(alice["papers"]) == 3 and alice["left_out"] > 0
    assert [s["status"] for s in planned] == ["would send", "would send", "nothing new"]
    assert [s["status"] for s in sent] == ["sent", "sent", "nothing new"]
    assert alice["delivered_to"] and alice["error"] is None and alice["queued"] == []
    assert len(smtp_server.inbox.messages) == 2


class _TryLater:
    """Answers every recipient with a temporary failure."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        return "451 4.3.0 Try again later"


def test_a_real_run_json_reports_a_retry_and_what_stays_queued(
    run, smtp_factory, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """After a 451 each reader with papers is `retry` with the server's answer as `error`,
    not delivered, and the email waiting for its next attempt is listed under `queued`."""
    mail_through(monkeypatch, smtp_factory(_TryLater()))
    sent = json.loads(run("send-now", "--json").stdout)
    check_report(sent, RUN_STATUSES)
    alice = sent[0]
    assert alice["status"] == "retry" and alice["delivered_to"] is None
    assert "451" in alice["error"]
    (row,) = alice["queued"]
    assert row["status"] == "retry" and row["next_attempt_at"].endswith(" UTC")
    assert [p["id"] for p in row["papers"]] == [p["id"] for p in alice["papers"]]


def test_dry_run_text_lists_each_subscribers_titles_in_the_right_number(run) -> None:  # type: ignore[no-untyped-def]
    """`1 new paper`, `3 new papers (… more matched …)`, `0 new papers`, each paper's title
    under its reader."""
    planned = json.loads(run("send-now", "--dry-run", "--json").stdout)
    shown = run("send-now", "--dry-run").stdout.splitlines()
    alice, bob, _carol = planned
    left_out = alice["left_out"]
    assert (
        shown[0] == f"alice@example.org: 3 new papers ({left_out} more matched beyond max_papers)"
    )
    titles = [p["title"] for p in (*alice["papers"], *bob["papers"])]
    listed = [*shown[1:4], shown[5]]
    assert all(line.startswith("  - ") and len(line) <= 80 for line in listed)
    assert all(t.startswith(line[4:].rstrip("…")) for t, line in zip(titles, listed, strict=True))
    assert shown[4] == "bob@example.org: 1 new paper"
    assert shown[6:] == ["carol@example.org: 0 new papers"]
