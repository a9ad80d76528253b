"""Real-browser check of readers' pages: a digest `send-now` delivered, its unsubscribe link
opened and its button pressed, then a vote, in headless Chromium at phone and desktop widths.

Chromium is Debian's `chromium` package driven by Playwright, as in
tests/compose/test_browser.py: skipped when missing, except under CI. Screenshots go to
$DIGESTBOT_ARTIFACTS, else tests/artifacts/ (gitignored).
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import ARTIFACTS, SmtpServer
from helpers import cli, prepare, rows
from playwright.sync_api import Browser, Page
from served import KEY, serving, unsubscribe_link
from sqlalchemy import Engine

from digestbot import tokens
from digestbot.rules import readers
from digestbot.settings import Settings

BACKGROUNDS = {"light": "rgb(255, 255, 255)", "dark": "rgb(21, 22, 26)"}


def looks_right(page: Page, scheme: str, name: str) -> None:
    """No horizontal overflow, the colour scheme honoured; a full-page screenshot saved."""
    scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
    assert scroll <= inner, f"horizontal overflow: {scroll}px content in {inner}px"
    background = page.evaluate("getComputedStyle(document.body).backgroundColor")
    assert background == BACKGROUNDS[scheme]
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.parametrize(("width", "scheme"), [(375, "light"), (1024, "light"), (375, "dark")])
def test_a_reader_unsubscribes_and_votes_from_a_delivered_digest(
    browser: Browser,
    engine: Engine,
    settings: Settings,
    smtp_server: SmtpServer,
    width: int,
    scheme: str,
) -> None:
    """The delivered email's link opens the page, its button unsubscribes and the
    confirmation shows; a vote link of a paper of that digest records the other button's
    vote; only the site itself is ever requested."""
    prepare(engine, datetime.now(UTC), count=1)  # send-now reads the real clock
    with serving(settings, engine) as site:
        env = {"DIGESTBOT_PUBLIC_URL": site.url, "DIGESTBOT_SECRET_KEY": KEY}
        sent = cli(settings, smtp_server.port, "send-now", extra=env)
        _, err = sent.communicate(timeout=120)
        assert sent.returncode == 0, err
        (message,) = smtp_server.inbox.messages
        (delivery,) = rows(engine)
        page = browser.new_page(viewport={"width": width, "height": 800}, color_scheme=scheme)
        requested: list[str] = []
        page.on("request", lambda request: requested.append(request.url))
        try:
            page.goto(unsubscribe_link(message))
            looks_right(page, scheme, f"unsubscribe-{width}-{scheme}")
            page.get_by_role("button", name="Unsubscribe").click()
            page.get_by_role("heading", name="You are unsubscribed").wait_for()
            looks_right(page, scheme, f"unsubscribed-{width}-{scheme}")
            paper = delivery.paper_ids[0]
            link = tokens.vote_url(
                site.url, KEY, delivery.subscriber_id, paper, "up", delivery.period_key
            )
            page.goto(link)
            looks_right(page, scheme, f"vote-{width}-{scheme}")
            page.get_by_role("button", name="Not relevant").click()
            page.get_by_role("heading", name="Thank you").wait_for()
            looks_right(page, scheme, f"voted-{width}-{scheme}")
        finally:
            page.close()
    assert list(readers.suppressions(engine)) == [delivery.recipient]
    assert [(v.paper_id, v.vote) for v in readers.votes(engine)] == [(paper, "down")]
    assert all(url.startswith(site.url + "/") for url in requested), requested
