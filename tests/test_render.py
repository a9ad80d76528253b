"""Tests for rendering digests into safe RFC 5322 messages."""

from __future__ import annotations

from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digestbot.errors import ConfigError
from digestbot.models import Digest, DigestItem, Match, Paper, Subscriber
from digestbot.render import (
    Envelope,
    build_message,
    header_safe,
    make_environment,
    message_id,
    render_digest,
)

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
HOSTILE = 'Evil <script>alert("x")</script>\r\nBcc: victim@evil.example'


def a_digest(title: str = "Flash attention, again", name: str = "Alice") -> Digest:
    sub = Subscriber(1, "alice@example.org", name, ())
    paper = Paper("p1", title, "We make attention fast. " * 30, NOW, upvotes=4, author_count=3)
    match = Match(("Efficient attention",), ("attention",), ("attention",), 2.0)
    return Digest(sub, (DigestItem(paper, match),), NOW, "manual:x")


def message_for(digest: Digest, templates: Path | None = None):  # type: ignore[no-untyped-def]
    rendered = render_digest(make_environment(templates), digest)
    envelope = Envelope(
        "digestbot@example.org",
        "digestbot",
        digest.subscriber.email,
        digest.subscriber.name,
        message_id("digest", digest.subscriber.email, "manual:x", "example.org"),
        NOW,
    )
    raw = bytes(build_message(rendered, envelope))
    return raw, message_from_bytes(raw, policy=policy.default)


def test_the_message_has_text_and_html_parts_and_the_headers() -> None:
    """multipart/alternative with both parts, and every required header once."""
    _, msg = message_for(a_digest())
    assert msg.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    for header in ("Subject", "From", "To", "Date", "Message-ID", "List-Unsubscribe"):
        assert len(msg.get_all(header) or []) == 1, header
    assert msg["Subject"] == "1 new paper: Efficient attention · Nov 3"
    assert msg["Message-ID"].endswith("@example.org>")
    assert (
        msg["List-Unsubscribe"]
        .strip()
        .startswith("<mailto:digestbot@example.org?subject=unsubscribe")
    )


def test_the_message_id_is_fixed_by_what_the_email_is() -> None:
    """Same subscriber, kind and period give the same Message-ID; another period does not."""
    one = message_id("digest", "a@x.org", "p1", "x.org")
    assert one == message_id("digest", "a@x.org", "p1", "x.org")
    assert one != message_id("digest", "a@x.org", "p2", "x.org")


def test_hostile_titles_are_escaped_in_html_and_cannot_forge_headers() -> None:
    """A title with markup and CRLF stays text: escaped in HTML, no new header line."""
    raw, msg = message_for(a_digest(title=HOSTILE, name="Eve\r\nBcc: x@evil.example"))
    html = msg.get_body(("html",)).get_content()
    assert "<script" not in html
    assert '&lt;script&gt;alert("x")&lt;/script&gt;' in html
    assert msg["Bcc"] is None
    headers = raw.split(b"\n\n", 1)[0]
    assert b"\nBcc:" not in headers
    assert "Bcc: x@evil.example" in str(msg["To"])  # folded into the display name, harmless


def test_header_safe_removes_controls_and_folds_space() -> None:
    """Control characters and line separators become single spaces."""
    assert header_safe("a\r\nb\tc\x00d\u2028e") == "a b c d e"


def test_the_text_part_reads_at_80_columns() -> None:
    """No line of the text part is wider than 80 characters for ordinary words."""
    _, msg = message_for(a_digest())
    text = msg.get_body(("plain",)).get_content()
    assert "1. Flash attention, again" in text
    assert "matched: attention (Efficient attention)" in text
    assert max(len(line) for line in text.splitlines()) <= 80


def test_a_user_template_overrides_the_bundled_one(tmp_path: Path) -> None:
    """DIGESTBOT_TEMPLATES_DIR is searched first; missing templates fall back."""
    (tmp_path / "digest.subject.txt").write_text("Papers for {{ subscriber.name }}")
    _, msg = message_for(a_digest(), tmp_path)
    assert msg["Subject"] == "Papers for Alice"
    assert "Flash attention" in msg.get_body(("html",)).get_content()


def test_an_undefined_variable_in_a_template_is_an_error(tmp_path: Path) -> None:
    """StrictUndefined turns a typo in a template into a clear ConfigError."""
    (tmp_path / "digest.subject.txt").write_text("{{ subscribr.name }}")
    with pytest.raises(ConfigError, match="subscribr"):
        message_for(a_digest(), tmp_path)


def test_titles_link_to_the_paper_page_and_only_http_links_are_rendered() -> None:
    """The HF page is the title link; a javascript: URL in stored data never becomes a link."""
    sub = Subscriber(1, "alice@example.org", "Alice", ())
    paper = Paper(
        "p1",
        "Linked",
        "abstract",
        NOW,
        links=(
            ("hf", "https://huggingface.co/papers/2501.1"),
            ("code", "javascript:alert(1)"),
            ("pdf", "https://arxiv.org/pdf/2501.1"),
        ),
    )
    match = Match(("r",), ("linked",), ("linked",), 11.0)
    _, msg = message_for(Digest(sub, (DigestItem(paper, match),), NOW, "k"))
    html = msg.get_body(("html",)).get_content()
    assert '<a href="https://huggingface.co/papers/2501.1"' in html
    assert 'href="https://arxiv.org/pdf/2501.1"' in html
    assert "javascript:" not in html
    assert "https://huggingface.co/papers/2501.1" in msg.get_body(("plain",)).get_content()


def test_one_click_unsubscribe_headers_carry_a_signed_https_link() -> None:
    """With an unsubscribe URL, List-Unsubscribe has mailto and https, plus the One-Click POST."""
    from digestbot.render import unsubscribe_link

    link = unsubscribe_link("https://example.org/unsub", "alice@example.org", "s3cret")
    assert link.startswith("https://example.org/unsub?email=alice%40example.org&token=")
    assert link != unsubscribe_link("https://example.org/unsub", "alice@example.org", "other")
    digest = a_digest()
    rendered = render_digest(make_environment(), digest)
    envelope = Envelope(
        "digestbot@example.org",
        "digestbot",
        "alice@example.org",
        "Alice",
        "<m@example.org>",
        NOW,
        unsubscribe_url=link,
    )
    msg = message_from_bytes(bytes(build_message(rendered, envelope)), policy=policy.default)
    value = " ".join(str(msg["List-Unsubscribe"]).split())
    assert (
        value
        == f"<mailto:digestbot@example.org?subject=unsubscribe%20alice%40example.org>, <{link}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


hostile = st.lists(
    st.sampled_from(
        [*"ab <>\"'=?:;,@\r\n\t\x00\x0b\u2028\u0085é", "=?utf-8?q?", "?=", "\r\nBcc: x@evil"]
    ),
    max_size=20,
).map("".join)


@settings(max_examples=100, deadline=None)
@given(name=hostile, rule=hostile, title=hostile)
def test_no_input_can_add_or_break_a_header(name: str, rule: str, title: str) -> None:
    """Whatever names, rule names and titles hold, the headers stay one line each and no new
    header appears."""
    sub = Subscriber(1, "alice@example.org", name, ())
    paper = Paper("p1", title or "t", "abstract", NOW)
    match = Match((rule or "r",), ("t",), (), 1.0)
    raw, msg = message_for(Digest(sub, (DigestItem(paper, match),), NOW, "k"))
    head = raw.split(b"\n\n", 1)[0].decode("ascii")
    names = [line.split(":", 1)[0] for line in head.split("\n") if line and not line[0].isspace()]
    assert sorted(names) == sorted(
        [
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
            "MIME-Version",
            "Content-Type",
        ]
    )
    for header in ("Subject", "To"):
        value = str(msg[header])
        assert "\r" not in value and "\n" not in value and "\x00" not in value
