"""Tests for `preview`: the next digest exactly as send-now would send it, nothing recorded."""

from __future__ import annotations

import webbrowser
from datetime import datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from conftest import LISTING_000, SmtpServer, db_fingerprint
from helpers import ALICE_YAML
from pydantic import SecretStr
from sqlalchemy import Engine
from typer.testing import CliRunner

from digestbot import service
from digestbot.cli import app
from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import active_subscribers, sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.tokens import read_unsubscribe, unsubscribe_token


def prepare(engine: Engine, now: datetime) -> None:
    ingest_path(engine, LISTING_000, now=now)
    sync_subscriptions(engine, parse_subscriptions(ALICE_YAML, source="s.yaml"), now=now)


async def test_it_previews_exactly_the_bytes_send_now_delivers(
    engine: Engine,
    smtp_settings: Settings,
    smtp_server: SmtpServer,
    clock: datetime,
    tmp_path: Path,
) -> None:
    """For the same clock, the previewed message is byte for byte what the SMTP server gets,
    and previewing writes nothing to the database."""
    prepare(engine, clock)
    before = db_fingerprint(tmp_path / "digestbot.db")
    previewed = service.preview(engine, smtp_settings, "alice@example.org", now=clock).new
    assert previewed is not None
    assert db_fingerprint(tmp_path / "digestbot.db") == before
    outcomes, _ = await service.send_now(
        engine, smtp_settings, now=clock, emails=["alice@example.org"]
    )
    assert [o.status for o in outcomes] == ["sent"]
    (received,) = smtp_server.inbox.envelopes
    assert received.original_content == previewed
    assert service.preview(engine, smtp_settings, "alice@example.org", now=clock).new is None


def test_the_public_url_and_the_sender_shape_the_headers(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """With DIGESTBOT_PUBLIC_URL set, List-Unsubscribe holds the mailto and the reader's signed
    `/u/` link, the footer links there, and the Message-ID is on the From domain."""
    prepare(engine, clock)
    configured = settings.model_copy(
        update={
            "public_url": "https://lab.example",
            "secret_key": SecretStr("s3cret-s3cret-s3cret"),
            "from_address": "papers@lab.example",
        }
    )
    raw = service.preview(engine, configured, "alice@example.org", now=clock).new
    assert raw is not None
    msg = message_from_bytes(raw, policy=policy.default)
    (alice,) = active_subscribers(engine, ["alice@example.org"])
    link = f"https://lab.example/u/{unsubscribe_token('s3cret-s3cret-s3cret', alice.id)}"
    assert read_unsubscribe("s3cret-s3cret-s3cret", link.rsplit("/", 1)[1]) == alice.id
    mailto = "mailto:papers@lab.example?subject=unsubscribe%20alice%40example.org"
    assert " ".join(str(msg["List-Unsubscribe"]).split()) == f"<{mailto}>, <{link}>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert str(msg["Message-ID"]).endswith("@lab.example>")
    assert f'href="{link.replace("&", "&amp;")}"' in msg.get_body(("html",)).get_content()


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, engine: Engine, clock: datetime) -> Any:
    """The CLI on the test database, with Alice subscribed and the saved listing ingested."""
    prepare(engine, datetime.now(clock.tzinfo))
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")
    runner = CliRunner()
    return lambda *args: runner.invoke(app, list(args), catch_exceptions=False)


def test_it_prints_the_subject_and_text_part(cli: Any, tmp_path: Path) -> None:
    """Without --out, stdout is the subject and the plain-text part; nothing is recorded."""
    before = db_fingerprint(tmp_path / "digestbot.db")
    result = cli("preview", "alice@example.org")
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("Subject: ")
    assert "new papers for Alice" in result.stdout
    assert "Informer: Beyond Efficient Transformer" in result.stdout
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_it_writes_the_whole_message_or_the_html(cli: Any, tmp_path: Path) -> None:
    """`--out x.eml` is the full RFC 5322 message; any other name gets the HTML part."""
    assert cli("preview", "alice@example.org", "--out", str(tmp_path / "x.eml")).exit_code == 0
    message = message_from_bytes((tmp_path / "x.eml").read_bytes(), policy=policy.default)
    assert message["To"] == "Alice <alice@example.org>"
    html_part = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert cli("preview", "alice@example.org", "--out", str(tmp_path / "x.html")).exit_code == 0
    written = (tmp_path / "x.html").read_text(encoding="utf-8")
    assert written.startswith("<!DOCTYPE html>") and "Informer" in written
    assert written.split("<body", 1)[1] == html_part.replace("\r\n", "\n").split("<body", 1)[1]


def test_it_opens_the_html_in_a_browser(
    cli: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """--open hands the HTML file to the system's browser."""
    opened: list[str] = []
    monkeypatch.setattr(webbrowser, "open", lambda url, *a, **k: opened.append(url) or True)
    result = cli("preview", "alice@example.org", "--out", str(tmp_path / "p.html"), "--open")
    assert result.exit_code == 0
    assert opened == [(tmp_path / "p.html").resolve().as_uri()]


def test_an_unknown_address_is_one_error_line(cli: Any) -> None:
    """A subscriber who is not active: `Error: …` on stderr, exit 1."""
    result = cli("preview", "nobody@example.org")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: not an active subscriber: nobody@example.org")
    assert len(result.stderr.strip().splitlines()) == 1


def test_nothing_new_says_so_and_exits_0(cli: Any) -> None:
    """After everything was sent, preview says send-now would send nothing."""
    assert cli("send-now").exit_code == 0
    result = cli("preview", "alice@example.org")
    assert result.exit_code == 0
    assert "Nothing new for alice@example.org" in result.stdout
