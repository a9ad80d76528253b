"""Each email's envelope: stored with its row, internationalised addresses sent as each server
allows, and one subscriber's problem failing only their own email."""

from __future__ import annotations

import email
import shutil
from datetime import datetime
from email import policy
from pathlib import Path
from typing import Any

from conftest import LISTING_000
from helpers import Inbox, pointed, rows
from sqlalchemy import Engine

from digestbot import service
from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings


class Envelopes(Inbox):
    """Keeps each message's envelope: MAIL FROM options and RCPT TO addresses."""

    def __init__(self) -> None:
        super().__init__()
        self.envelopes: list[tuple[str, list[str], list[str]]] = []
        self.raw: list[bytes] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.envelopes.append((envelope.mail_from, envelope.rcpt_tos, envelope.mail_options))
        self.raw.append(envelope.original_content)
        return await super().handle_DATA(server, session, envelope)


def subscribe(engine: Engine, now: datetime, *emails: str) -> None:
    """Ingest the sample listing and subscribe `emails`, each to papers on transformers."""
    ingest_path(engine, LISTING_000, now=now)
    people = "".join(f"  - email: {e}\n    rules:\n      - any: [transformer]\n" for e in emails)
    spec = parse_subscriptions("subscribers:\n" + people, source="s.yaml")
    sync_subscriptions(engine, spec, now=now)


async def test_an_internationalised_domain_is_sent_in_its_ascii_form(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """user@exämple.org goes out as user@xn--exmple-cua.org, in the envelope and the To
    header, to a server without SMTPUTF8."""
    inbox = Envelopes()
    subscribe(engine, clock, "user@exämple.org")
    target = pointed(settings, smtp_factory(inbox, enable_SMTPUTF8=False))
    await service.send_now(engine, target, now=clock)
    assert [rcpt for _, rcpt, _ in inbox.envelopes] == [["user@xn--exmple-cua.org"]]
    assert inbox.messages[0]["To"].addresses[0].addr_spec == "user@xn--exmple-cua.org"


async def test_a_non_ascii_mailbox_is_sent_with_smtputf8_when_the_server_offers_it(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """jöhn@example.org is sent as it is, with MAIL FROM … SMTPUTF8, and its To header in
    UTF-8."""
    inbox = Envelopes()
    subscribe(engine, clock, "jöhn@example.org")
    target = pointed(settings, smtp_factory(inbox, enable_SMTPUTF8=True))
    await service.send_now(engine, target, now=clock)
    assert [(rcpt, "SMTPUTF8" in options) for _, rcpt, options in inbox.envelopes] == [
        (["jöhn@example.org"], True)
    ]
    # The email package reads 8-bit headers only from text (RFC 6532 headers are UTF-8).
    message = email.message_from_string(inbox.raw[0].decode(), policy=policy.default)
    assert message["To"].addresses[0].addr_spec == "jöhn@example.org"


async def test_a_non_ascii_mailbox_fails_alone_on_a_server_without_smtputf8(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """Without SMTPUTF8 that one email fails for good, saying why, and the others go out."""
    inbox = Envelopes()
    subscribe(engine, clock, "alice@example.org", "jöhn@example.org", "zed@example.org")
    target = pointed(settings, smtp_factory(inbox, enable_SMTPUTF8=False))
    outcomes, _ = await service.send_now(engine, target, now=clock)
    assert {o.email: o.status for o in outcomes} == {
        "alice@example.org": "sent",
        "jöhn@example.org": "failed",
        "zed@example.org": "sent",
    }
    (failed,) = [r for r in rows(engine) if r.status == "failed"]
    assert "does not offer SMTPUTF8" in (failed.last_error or "")
    assert sorted(rcpt[0] for _, rcpt, _ in inbox.envelopes) == [
        "alice@example.org",
        "zed@example.org",
    ]


async def test_a_digest_that_cannot_be_rendered_fails_only_its_subscriber(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime, tmp_path: Path
) -> None:
    """A digest whose rendering raises marks that subscriber's row failed, with the reason,
    and everyone else's digest is sent."""
    templates = tmp_path / "templates"
    shutil.copytree(Path(__file__).parents[2] / "templates", templates)
    text = templates / "digest.txt"
    text.write_text(
        "{% if subscriber.email.startswith('bad') %}{{ 1 // 0 }}{% endif %}" + text.read_text()
    )
    inbox = Envelopes()
    subscribe(engine, clock, "alice@example.org", "bad@example.org", "zed@example.org")
    target = pointed(settings, smtp_factory(inbox), templates_dir=templates)
    outcomes, _ = await service.send_now(engine, target, now=clock)
    assert {o.email: o.status for o in outcomes}["bad@example.org"] == "failed"
    assert len(inbox.messages) == 2
    (failed,) = [r for r in rows(engine) if r.status == "failed"]
    assert "ZeroDivisionError" in (failed.last_error or "")
