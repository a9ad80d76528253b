"""The fast message builder gives the same email as the email package, as SMTP-ready bytes."""

from __future__ import annotations

import base64
import email.policy
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from test_render import HOSTILE, NOW, a_digest

from digestbot.mailer import Outbound
from digestbot.models import Digest
from digestbot.render import (
    Envelope,
    build_message,
    make_environment,
    message_bytes,
    message_id,
    render_digest,
)


def both(digest: Digest, templates: Path | None = None) -> tuple[bytes, bytes]:
    """The digest's message from message_bytes, and from the email package."""
    rendered = render_digest(make_environment(templates), digest)
    sub = digest.subscriber
    envelope = Envelope(
        "digestbot@example.org",
        "digestbot",
        sub.email,
        sub.name,
        message_id("digest", sub.email, "manual:x", "example.org"),
        NOW,
        "https://example.org/unsubscribe?email=alice%40example.org&token=abc",
    )
    slow = build_message(rendered, envelope).as_bytes(policy=email.policy.SMTP)
    return message_bytes(rendered, envelope), slow


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_it_builds_the_same_headers_and_parts_as_the_email_package() -> None:
    """Every header (but the random boundary) and both decoded parts are equal, even for a
    hostile title and display name; the parser finds no defect."""
    for digest in (a_digest(), a_digest(title=HOSTILE, name="Eve\r\nBcc: x@evil.example")):
        fast, slow = both(digest)
        mine, theirs = parsed(fast), parsed(slow)
        assert mine.items()[:-1] == theirs.items()[:-1]  # Content-Type carries the boundary
        assert mine.get_content_type() == "multipart/alternative"
        assert [p.get_content() for p in mine.iter_parts()] == [
            p.get_content() for p in theirs.iter_parts()
        ]
        assert not mine.defects and not any(p.defects for p in mine.iter_parts())
        assert mine["Bcc"] is None


def test_it_ends_every_line_with_crlf_and_keeps_lines_within_998_octets() -> None:
    """The bytes are ready for SMTP DATA: CRLF only, no line longer than RFC 5322 allows."""
    fast, _ = both(a_digest())
    assert b"\n" not in fast.replace(b"\r\n", b"")
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998


def test_it_labels_ascii_parts_7bit_and_utf8_parts_8bit(tmp_path: Path) -> None:
    """Parts within the line limit go unencoded, labelled by what they hold."""
    (tmp_path / "digest.txt").write_text("Hello {{ subscriber.email }}\n", encoding="utf-8")
    text, html = parsed(both(a_digest(title="Attention für alle ≥ 2"), tmp_path)[0]).iter_parts()
    assert (text["Content-Transfer-Encoding"], html["Content-Transfer-Encoding"]) == (
        "7bit",
        "8bit",
    )
    assert "Attention für alle ≥ 2" in html.get_content()


def test_it_encodes_a_part_with_a_line_over_998_octets_as_base64(tmp_path: Path) -> None:
    """A template that renders a 3,000-character line still gives a valid message; base64
    carries the text in canonical form (CRLF line ends, RFC 2049)."""
    (tmp_path / "digest.html").write_text("<p>" + "é" * 3000 + "</p>\n", encoding="utf-8")
    fast, _ = both(a_digest(), tmp_path)
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998
    html = parsed(fast).get_body(("html",))
    assert html is not None and html["Content-Transfer-Encoding"] == "base64"
    assert html.get_content() == "<p>" + "é" * 3000 + "</p>\r\n"
    body = fast.split(b"Content-Transfer-Encoding: base64\r\n\r\n")[1].split(b"\r\n--")[0]
    assert base64.b64decode(body).decode() == "<p>" + "é" * 3000 + "</p>\r\n"


def test_it_reads_the_envelope_back_from_the_stored_bytes() -> None:
    """Outbound takes the sender and recipient from the headers, display names aside."""
    fast, _ = both(a_digest(name='Ève, "the" <Tester>'))
    outbound = Outbound.of(fast)
    assert (outbound.sender, outbound.recipients) == (
        "digestbot@example.org",
        ("alice@example.org",),
    )
