"""Tests for one-click unsubscribe through the served site: the POST mail providers send,
the page a click opens, forged links, queued digests and resubscribing (real uvicorn on
loopback, real SQLite, real aiosmtpd)."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta
from pathlib import Path

import httpx
import pytest
from conftest import SmtpServer, db_fingerprint, free_port, smtp_at
from helpers import prepare, rows, subscribers
from served import KEY, ONE_CLICK, serving, unsubscribe_link
from sqlalchemy import Engine
from typer.testing import CliRunner

from digestbot import service, tokens
from digestbot.cli import app
from digestbot.delivery.transport import TransportUnavailable
from digestbot.rules import readers
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings

GMAIL_BODY = b"List-Unsubscribe=One-Click"


def db_path(settings: Settings) -> Path:
    return Path(settings.database_url.removeprefix("sqlite:///"))


def delivered_link(smtp_server: SmtpServer, email: str) -> str:
    (message,) = [m for m in smtp_server.inbox.messages if m["To"].addresses[0].addr_spec == email]
    return unsubscribe_link(message)


def test_the_one_click_post_from_a_delivered_email_stops_that_readers_digests(
    engine: Engine, smtp_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """Gmail's POST to the List-Unsubscribe URL of a message send-now delivered answers 200
    with no cookie or redirect, and that reader is planned no digest again; a repeat is harmless."""
    prepare(engine, clock, count=2)
    with serving(smtp_settings, engine) as site:
        asyncio.run(service.send_now(engine, site.settings, now=clock))
        link = delivered_link(smtp_server, "reader0@example.org")
        assert link.startswith(f"{site.url}/u/")
        answers = [httpx.post(link, content=GMAIL_BODY, headers=ONE_CLICK) for _ in range(2)]
    for answer in answers:
        assert answer.status_code == 200
        assert "set-cookie" not in answer.headers and "location" not in answer.headers
        assert "<script" not in answer.text and "You are unsubscribed" in answer.text
    assert list(readers.suppressions(engine)) == ["reader0@example.org"]
    assert readers.suppressions(engine)["reader0@example.org"].via == "link"
    later = clock + timedelta(days=1)
    planned = [d.subscriber.email for d in service.plan_digests(engine, smtp_settings, now=later)]
    assert planned == ["reader1@example.org"]


def test_a_reader_who_left_stays_out_through_a_sync_of_a_file_still_listing_them(
    engine: Engine, settings: Settings, clock: datetime, tmp_path: Path
) -> None:
    """After the one-click POST, `subscriptions sync` of a file that still lists the reader
    leaves them without digests."""
    prepare(engine, clock, count=2)
    with serving(settings, engine) as site:
        link = tokens.unsubscribe_url(site.url, KEY, active_subscribers(engine)[0].id)
        assert httpx.post(link, content=GMAIL_BODY, headers=ONE_CLICK).status_code == 200
    listed = tmp_path / "subscriptions.yaml"
    listed.write_text(subscribers(2))
    env = {"DIGESTBOT_DATABASE_URL": settings.database_url}
    synced = CliRunner().invoke(app, ["subscriptions", "sync", str(listed)], env=env)
    assert synced.exit_code == 0, synced.output
    planned = [d.subscriber.email for d in service.plan_digests(engine, settings, now=clock)]
    assert planned == ["reader1@example.org"]


def test_the_page_a_click_opens_names_the_reader_has_the_button_and_changes_nothing(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """GET (a person, or a link scanner) shows the address, its digest and one POST button;
    the database is byte for byte what it was."""
    prepare(engine, clock, count=1)
    before = db_fingerprint(db_path(settings))
    with serving(settings, engine) as site:
        reader = active_subscribers(engine)[0]
        page = httpx.get(tokens.unsubscribe_url(site.url, KEY, reader.id))
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "reader0@example.org" in page.text and "daily digest" in page.text
    assert page.text.count('<form method="post"') == 1 and "<button" in page.text
    assert "<script" not in page.text and "set-cookie" not in page.headers
    assert "script-src" not in page.headers["content-security-policy"]  # default-src 'none'
    assert db_fingerprint(db_path(settings)) == before


def test_forged_truncated_and_other_key_tokens_get_a_400_page_and_change_nothing(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Links the key did not sign, cut short, or of another kind, whether opened or POSTed,
    answer a 400 page and leave the database as it was."""
    prepare(engine, clock, count=1)
    reader = active_subscribers(engine)[0]
    real = tokens.unsubscribe_token(KEY, reader.id)
    forged = [
        tokens.unsubscribe_token("another-key-just-as-long-as-ours", reader.id),
        real[:-4],
        real + "x",
        "1",
        tokens.vote_token(KEY, reader.id, "p1", "up", "daily:1"),
    ]
    before = db_fingerprint(db_path(settings))
    with serving(settings, engine) as site:
        answers = [httpx.get(f"{site.url}/u/{token}") for token in forged]
        answers += [
            httpx.post(f"{site.url}/u/{token}", content=GMAIL_BODY, headers=ONE_CLICK)
            for token in forged
        ]
        answers.append(httpx.post(f"{site.url}/u/{forged[0]}/resubscribe"))
    for answer in answers:
        assert answer.status_code == 400, answer.text
        assert "This link does not work" in answer.text and "Traceback" not in answer.text
    assert db_fingerprint(db_path(settings)) == before


def test_the_one_click_post_cancels_the_digests_queued_for_that_reader(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A digest queued while the mail server was down is cancelled, never sent; the other
    reader's stays queued, and the page says one email was cancelled."""
    prepare(engine, clock, count=2)
    with pytest.raises(TransportUnavailable):
        asyncio.run(service.send_now(engine, smtp_at(settings, free_port()), now=clock))
    gone = active_subscribers(engine)[0]
    with serving(settings, engine) as site:
        link = tokens.unsubscribe_url(site.url, KEY, gone.id)
        answer = httpx.post(link, content=GMAIL_BODY, headers=ONE_CLICK)
    assert answer.status_code == 200 and "1 email was" in answer.text
    states = {(r.subscriber_id == gone.id, r.status) for r in rows(engine)}
    assert states == {(True, "cancelled"), (False, "pending")}


def test_the_resubscribe_button_brings_the_reader_back(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """After unsubscribing, the confirmation's button takes the address off the suppression
    list and makes the reader active again; their page then offers to unsubscribe."""
    prepare(engine, clock, count=1)
    reader = active_subscribers(engine)[0]
    with serving(settings, engine) as site:
        link = tokens.unsubscribe_url(site.url, KEY, reader.id)
        left = httpx.post(link, content=GMAIL_BODY, headers=ONE_CLICK)
        assert f'action="{link.rsplit("/", 1)[1]}/resubscribe"' in left.text
        assert "gets nothing from digestbot" in httpx.get(link).text
        back = httpx.post(f"{link}/resubscribe")
        again = httpx.get(link)
    assert back.status_code == 200 and "Welcome back" in back.text
    assert readers.suppressions(engine) == {}
    assert [s.email for s in active_subscribers(engine)] == ["reader0@example.org"]
    assert "Unsubscribe from the daily digest?" in again.text
