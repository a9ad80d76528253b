"""Tests for `preview`: the next digest exactly as send-now would send it, nothing recorded."""

from __future__ import annotations

import re
import webbrowser
from datetime import datetime
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path
from typing import Any

import pytest
from conftest import LISTING_000, SmtpServer, db_fingerprint
from helpers import ALICE_YAML
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner

from digestbot import service
from digestbot.cli import app
from digestbot.compose.present import title_search
from digestbot.ingest.links import web_url
from digestbot.ingest.load import ingest_path
from digestbot.ingest.papers import to_paper
from digestbot.rules.subscribers import active_subscribers, sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, PaperRow
from digestbot.tokens import VoteToken, read_unsubscribe, read_vote, unsubscribe_token

KEY = "s3cret-s3cret-s3cret"
PUBLIC = "https://lab.example"
HF_FEED = Path(__file__).parent / "fixtures" / "feeds" / "hf_daily_papers_2025-01-15.json"


def prepare(engine: Engine, now: datetime) -> None:
    ingest_path(engine, LISTING_000, now=now)
    sync_subscriptions(engine, parse_subscriptions(ALICE_YAML, source="s.yaml"), now=now)


@pytest.mark.parametrize("links", [False, True], ids=["mailto", "public-url"])
async def test_it_previews_exactly_the_bytes_send_now_delivers(
    engine: Engine,
    smtp_settings: Settings,
    smtp_server: SmtpServer,
    clock: datetime,
    tmp_path: Path,
    links: bool,
) -> None:
    """For the same clock, the previewed message is byte for byte what the SMTP server gets
    (signed unsubscribe and vote links included), and previewing writes nothing to the
    database."""
    if links:
        smtp_settings = public(smtp_settings)
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


def public(settings: Settings) -> Settings:
    """`settings` with DIGESTBOT_PUBLIC_URL and its secret key."""
    return settings.model_copy(update={"public_url": PUBLIC, "secret_key": SecretStr(KEY)})


async def delivered(engine: Engine, settings: Settings, server: SmtpServer, now: datetime) -> Any:
    """Alice's digest as send-now delivered it to the SMTP server: the message, its parts
    (CRLFs made newlines), its delivery row and its papers (some with page, PDF and code
    links, from the saved Hugging Face feed)."""
    prepare(engine, now)
    ingest_path(engine, HF_FEED, now=now)
    outcomes, _ = await service.send_now(engine, settings, now=now, emails=["alice@example.org"])
    assert [o.status for o in outcomes] == ["sent"]
    (received,) = server.inbox.envelopes
    msg = message_from_bytes(received.original_content, policy=policy.default)
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    with Session(engine) as session:
        (row,) = session.exec(select(DeliveryRow)).all()
        papers = session.exec(select(PaperRow).where(col(PaperRow.id).in_(row.paper_ids))).all()
    assert papers
    return msg, text, html, row, list(papers)


async def test_with_a_public_url_every_reader_link_is_signed_for_that_reader(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """Through send-now: List-Unsubscribe holds the mailto and the `/u/` link, one-click is
    offered, the token reads back as the reader, the footer links to the same URL, and each
    paper's two vote links read back as (reader, paper, vote, the digest's period key)."""
    msg, text, html, row, papers = await delivered(
        engine, public(smtp_settings), smtp_server, clock
    )
    (alice,) = active_subscribers(engine, ["alice@example.org"])
    header = " ".join(str(msg["List-Unsubscribe"]).split())
    mailto, link = re.fullmatch(r"<(mailto:[^>]+)>, <([^>]+)>", header).groups()  # type: ignore[union-attr]
    assert mailto.startswith("mailto:") and link.startswith(f"{PUBLIC}/u/")
    assert read_unsubscribe(KEY, link.rsplit("/", 1)[1]) == alice.id == row.subscriber_id
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert f"Unsubscribe: {link}\n" in text
    assert re.findall(r'href="([^"]*)">Unsubscribe</a>', html) == [link]
    expected = {
        VoteToken(alice.id, paper.id, vote, row.period_key)
        for paper in papers
        for vote in ("up", "down")
    }
    for part in (text, html):
        found = re.findall(rf"{re.escape(PUBLIC)}/v/([^\s\"<]+)", part)
        assert len(found) == len(expected)
        assert {read_vote(KEY, token) for token in found} == expected


async def test_without_a_public_url_only_the_mailto_and_no_vote_links(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """Through send-now without DIGESTBOT_PUBLIC_URL: List-Unsubscribe is the mailto alone,
    there is no List-Unsubscribe-Post, the footer unsubscribes by mail, and no paper has
    vote links."""
    msg, text, html, _, _ = await delivered(engine, smtp_settings, smtp_server, clock)
    header = " ".join(str(msg["List-Unsubscribe"]).split())
    assert re.fullmatch(r"<mailto:[^>]+\?subject=unsubscribe%20alice%40example\.org>", header)
    assert msg["List-Unsubscribe-Post"] is None
    assert re.findall(r'href="([^"]*)">Unsubscribe</a>', html)[0].startswith("mailto:")
    for part in (text, html):
        assert "More like this" not in part and "Not relevant" not in part
        assert "/v/" not in part and "/u/" not in part


async def test_no_tracking_pixels_and_no_click_redirects(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """The HTML loads no image, and every link goes straight where it says: a paper's own
    page, PDF or code (or arXiv's search for its title when it has no page), the unsubscribe
    link, or a vote link; nothing else points at DIGESTBOT_PUBLIC_URL."""
    msg, text, html, _, papers = await delivered(engine, public(smtp_settings), smtp_server, clock)
    assert "<img" not in html.lower() and "url(" not in html.lower()
    own = {url for paper in papers for url in paper.links.values()}
    own |= {title_search(p.title) for p in papers if not web_url(to_paper(p).page())}
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]*)"', html)]
    ours = [h for h in hrefs if h.startswith(PUBLIC)]
    assert [h for h in ours if "/u/" in h] == [str(msg["List-Unsubscribe"]).split("<")[-1][:-1]]
    assert len([h for h in ours if h.startswith(f"{PUBLIC}/v/")]) == 2 * len(papers)
    assert len(ours) == 1 + 2 * len(papers)
    elsewhere = {h for h in hrefs if not h.startswith((PUBLIC, "mailto:"))}
    assert elsewhere and elsewhere <= own
    for line in text.splitlines():
        for url in re.findall(r"https?://\S+", line):
            assert url in own or url.startswith((f"{PUBLIC}/u/", f"{PUBLIC}/v/")), url


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
