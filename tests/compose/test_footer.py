"""Tests for what an email's footer tells its reader: what the email is, who sends it, how to
change what they get, and how to unsubscribe — never a command or a setting's name."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import UTC, datetime

import pytest
import typer
from helpers import a_digest
from samples import fixture_digest

from digestbot.cli import app
from digestbot.compose.footer import cadence
from digestbot.compose.render import Rendered, make_environment, render_digest
from digestbot.models import Digest

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
CONTACT = "Jane Doe <jane@lab.example>"
UNSUBSCRIBE = "https://lab.example/unsubscribe?email=ada%40example.org&token=0123abcd"


def emails() -> dict[str, Digest]:
    """A digest with every kind of paper in it and papers left out (carried to the next
    digest, or dropped), and an alert."""
    digest = replace(fixture_digest(NOW), carry_days=7)
    return {
        "digest": digest,
        "digest, rest dropped": replace(digest, carry_days=0),
        "alert": replace(digest, items=digest.items[:3], kind="alert", left_out=()),
    }


def rendered(kind: str, contact: str = CONTACT, unsubscribe: str = UNSUBSCRIBE) -> Rendered:
    return render_digest(
        make_environment(), emails()[kind], unsubscribe=unsubscribe, contact=contact
    )


def flat(text: str) -> str:
    """`text` with its line breaks folded, so a wrapped sentence reads as one line."""
    return " ".join(text.split())


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_the_contact_appears_in_the_text_and_the_html(kind: str) -> None:
    """The text and HTML parts of a digest and an alert both name who sends it and say to
    write to them to change what the reader gets."""
    email = rendered(kind)
    escaped = "Jane Doe &lt;jane@lab.example&gt;"
    assert f"Sent by {CONTACT}." in flat(email.text)
    assert f"reply to this email or write to {CONTACT}." in flat(email.text)
    assert f"Sent by {escaped}." in email.html
    assert f"reply to this email or write to {escaped}." in email.html


def test_a_contact_holding_markup_is_escaped_in_the_html() -> None:
    """A contact with `<`, `"` and `&` is text in the HTML part, never markup."""
    hostile = '<script>alert("x")</script> & <b>Jane</b>'
    email = rendered("digest", contact=hostile)
    assert "<script" not in email.html and "<b>Jane" not in email.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;Jane" in email.html
    assert hostile in flat(email.text)


def test_a_contact_that_is_a_web_address_is_a_link_in_the_html() -> None:
    """An https contact is linked; anything else (an address with a name) is not."""
    email = rendered("alert", contact="https://lab.example/papers")
    assert 'href="https://lab.example/papers">https://lab.example/papers</a>' in email.html
    assert 'href="Jane' not in rendered("alert").html


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_the_footer_says_what_the_email_is_and_for_whom(kind: str) -> None:
    """A digest says it is a daily digest of papers matching the reader's rules, an alert
    that it is an alert sent as soon as papers match; both name the reader's address."""
    email = rendered(kind)
    said = {
        "digest": "A daily digest of new papers matching your rules, from digestbot, for "
        "ada@example.org.",
        "alert": "An alert from digestbot for ada@example.org: new papers matching your "
        "alert rules",
    }[kind]
    assert said in flat(email.text) and said in email.html
    assert f"Unsubscribe: {UNSUBSCRIBE}" in email.text
    assert f'href="{UNSUBSCRIBE.replace("&", "&amp;")}">Unsubscribe</a>' in email.html


@pytest.mark.parametrize(
    ("frequency", "called"),
    [("daily", "daily digest"), ("weekdays", "weekday digest"), ("weekly:fri", "weekly digest")],
)
def test_the_footer_names_the_digest_by_how_often_it_comes(frequency: str, called: str) -> None:
    """A weekly subscriber's footer says weekly digest, a weekdays one weekday digest."""
    digest = a_digest()
    digest = replace(digest, subscriber=replace(digest.subscriber, frequency=frequency))
    email = render_digest(make_environment(), digest, contact=CONTACT)
    assert f"A {called} of new papers" in flat(email.text)
    assert cadence(frequency) == called


def test_no_email_tells_its_reader_to_run_a_command_or_names_a_setting() -> None:
    """Neither part of a digest or an alert holds `digestbot <command>`, a setting's name,
    `max_papers`, YAML or `mode: alert`: those are the operator's words, not the reader's."""
    commands = typer.main.get_command(app).commands  # type: ignore[attr-defined]
    banned = re.compile(
        rf"digestbot[ `]+({'|'.join(map(re.escape, commands))})\b"
        r"|max_papers|DIGESTBOT_|yaml|mode: alert",
        re.IGNORECASE,
    )
    for kind in emails():
        for unsubscribe in (UNSUBSCRIBE, ""):
            email = rendered(kind, unsubscribe=unsubscribe)
            for part in (email.subject, flat(email.text), email.html):
                assert not banned.search(part), (kind, banned.search(part))


def test_without_a_contact_the_footer_still_says_how_to_change() -> None:
    """Templates rendered with no contact (an older caller) still tell the reader to reply."""
    email = render_digest(make_environment(), a_digest())
    assert "To change which papers you get, or how often, reply to this email." in email.text
    assert "Sent by" not in email.text and "Sent by" not in email.html
