"""The message as sent: SMTP-ready bytes, the email package's own byte for byte, explicit transfer
encodings."""

from __future__ import annotations

import quopri
import re
from collections.abc import Sequence
from datetime import UTC
from email import message_from_bytes, policy
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage, Message
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from io import BytesIO
from pathlib import Path

import pytest
from helpers import HOSTILE, NOW, a_digest
from hypothesis import example, given
from hypothesis import strategies as st

from digestbot.compose.mime import header_line, multipart_alternative, transfer_encoding
from digestbot.compose.render import (
    _BASE64_UTF8,
    Envelope,
    Rendered,
    _header,
    build_message,
    header_safe,
    make_environment,
    message_headers,
    message_id,
    render_digest,
)
from digestbot.models import Digest


def raw(digest: Digest, templates: Path | None = None) -> bytes:
    """The digest's message as the bytes that are queued and sent."""
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
    return build_message(rendered, envelope)


def parsed(raw: bytes) -> EmailMessage:
    message = message_from_bytes(raw, policy=policy.default)
    assert isinstance(message, EmailMessage)
    return message


def test_a_hostile_title_and_name_give_a_message_without_defects() -> None:
    """The parser finds no defect and no injected header in a hostile digest."""
    message = parsed(raw(a_digest(title=HOSTILE, name="Eve\r\nBcc: x@evil.example")))
    assert message.get_content_type() == "multipart/alternative"
    assert not message.defects and not any(p.defects for p in message.iter_parts())
    assert message["Bcc"] is None


def test_it_ends_every_line_with_crlf_and_keeps_lines_within_998_octets() -> None:
    """The bytes are ready for SMTP DATA: CRLF only, no line longer than RFC 5322 allows."""
    fast = raw(a_digest())
    assert b"\n" not in fast.replace(b"\r\n", b"")
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998


def test_it_labels_ascii_parts_7bit_and_utf8_parts_8bit(tmp_path: Path) -> None:
    """Parts within the line limit go unencoded, labelled by what they hold."""
    (tmp_path / "digest.txt").write_text("Hello {{ subscriber.email }}\n", encoding="utf-8")
    (tmp_path / "digest.html").write_text("<p>{{ items[0].paper.title }}</p>\n", encoding="utf-8")
    text, html = parsed(raw(a_digest(title="Attention für alle ≥ 2"), tmp_path)).iter_parts()
    assert text["Content-Transfer-Encoding"] == "7bit"
    assert html["Content-Transfer-Encoding"] == "8bit"
    assert text["MIME-Version"] is None and html["MIME-Version"] is None  # top level only
    assert "Attention für alle ≥ 2" in html.get_content()


def test_it_encodes_a_part_with_a_line_over_998_octets_as_quoted_printable(tmp_path: Path) -> None:
    """A template that renders a 3,000-character line still gives a valid message."""
    (tmp_path / "digest.html").write_text("<p>" + "é" * 3000 + "</p>\n", encoding="utf-8")
    fast = raw(a_digest(), tmp_path)
    assert max(len(line) for line in fast.split(b"\r\n")) <= 998
    html = parsed(fast).get_body(("html",))
    assert html is not None and html["Content-Transfer-Encoding"] == "quoted-printable"
    assert "<p>" + "é" * 3000 + "</p>" in html.get_content()


def test_a_line_starting_with_from_reaches_the_reader_unchanged(tmp_path: Path) -> None:
    """Body lines that begin with "From " are not mangled to ">From " (an mbox habit)."""
    (tmp_path / "digest.txt").write_text("From the lab:\n{{ subscriber.email }}\n")
    (tmp_path / "digest.html").write_text("<p>\nFrom the lab:\n</p>\n", encoding="utf-8")
    text, html = parsed(raw(a_digest(), tmp_path)).iter_parts()
    assert text.get_content().startswith("From the lab:")
    assert "\nFrom the lab:" in html.get_content() and ">From" not in html.get_content()


QUOTED = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)


@given(st.text(max_size=200))
@example("Smith, John (Machine Learning Group, Department of Computer Science)")
def test_the_to_header_names_only_the_subscriber_whatever_their_name(name: str) -> None:
    """Any display name folds outside quoted strings, and the To header reads back as the
    subscriber's address alone."""
    envelope = Envelope("digestbot@example.org", "d", "alice@example.org", name, "<m@x>", NOW)
    headers = dict(message_headers(Rendered("s", "t", "h"), envelope))
    line = header_line("To", headers["To"])
    assert not [q for q in QUOTED.findall(line) if b"\n" in q], line
    message = parsed(multipart_alternative([("To", headers["To"])], BOUNDARY, b"t", b"h"))
    assert [a.addr_spec for a in message["To"].addresses] == ["alice@example.org"]


# The email package's own way to write the same message: compat32 as the MIME classes use it,
# with SMTP's line endings and bodies left as written.
STOCK = policy.compat32.clone(linesep="\r\n", mangle_from_=False)


def stock_message(
    headers: Sequence[tuple[str, str | Header | bytes]], boundary: str, text: bytes, html: bytes
) -> bytes:
    """The message built with the email package's MIME classes and written by its stock
    BytesGenerator, with the same transfer encodings as ours (quoted-printable from the
    body with its line breaks made LF, as ours); a value folded already (bytes) is one that
    compat32 writes as it is."""
    message = MIMEMultipart("alternative", boundary=boundary)
    for name, value in headers:
        message[name] = value.decode("ascii") if isinstance(value, bytes) else value  # type: ignore[assignment]
    for body, subtype in ((text, "plain"), (html, "html")):
        part = MIMENonMultipart("text", subtype, charset="utf-8")
        del part["MIME-Version"]
        part["Content-Transfer-Encoding"] = encoding = transfer_encoding(body)
        if encoding == "quoted-printable":
            lf = body.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
            part.set_payload(quopri.encodestring(lf).decode("ascii"))
        else:
            part.set_payload(body)
        message.attach(part)
    out = BytesIO()
    BytesGenerator(out, policy=STOCK).flatten(message)
    return out.getvalue()


def stock_headers(*headers: tuple[str, str | Header]) -> bytes:
    """The header block the stock BytesGenerator writes for a message of just `headers`."""
    message = Message()
    for name, value in headers:
        message[name] = value  # type: ignore[assignment]
    out = BytesIO()
    BytesGenerator(out, policy=STOCK).flatten(message)
    return out.getvalue()


def crlf(text: str) -> str:
    """`text` with every CRLF, lone CR and lone LF made CRLF."""
    return re.sub(r"\r\n|\r|\n", "\r\n", text)


# Line breaks of every kind, "From " and dots at a line's start, "=" (quoted-printable's
# escape), non-ASCII, and a run long enough to need quoted-printable.
BODIES = st.lists(
    st.sampled_from(["\r\n", "\r", "\n", "a", " ", "\t", ".", "=", "é", "…", "From ", "é" * 600])
).map("".join)
NAMES = st.text()
ADDRESSES = st.emails()


@st.composite
def emails(draw: st.DrawFn) -> tuple[Rendered, Envelope]:
    """Any rendered email and envelope: arbitrary subject, names, addresses and bodies."""
    recipient = draw(ADDRESSES)
    envelope = Envelope(
        draw(ADDRESSES),
        draw(NAMES),
        recipient,
        draw(NAMES),
        message_id("digest", recipient, draw(st.text()), "example.org"),
        draw(st.datetimes(timezones=st.just(UTC))),
        draw(st.none() | st.just("https://example.org/u?email=a%40b&token=c") | st.text()),
        draw(st.booleans()),
    )
    return Rendered(draw(st.text()), draw(BODIES), draw(BODIES)), envelope


BOUNDARY = "==digestbot-0123456789abcdef0123456789abcdef=="


@given(emails(), st.from_regex(r"[0-9A-Za-z'()+_,./:=?-]{1,70}", fullmatch=True))
def test_our_message_is_the_bytes_the_email_packages_generator_writes(
    email: tuple[Rendered, Envelope], boundary: str
) -> None:
    """Whatever the subject, names, addresses, bodies and boundary: byte for byte the stock
    BytesGenerator's output for the same message built from the email package's classes."""
    rendered, envelope = email
    headers = message_headers(rendered, envelope)
    text, html = rendered.text.encode(), rendered.html.encode()
    assert multipart_alternative(headers, boundary, text, html) == stock_message(
        headers, boundary, text, html
    )


@given(emails())
def test_our_message_parses_to_the_same_headers_text_and_html_as_the_email_packages(
    email: tuple[Rendered, Envelope],
) -> None:
    """Read back with the modern parser: the headers and decoded bodies of the email
    package's own message, and the bodies as rendered (line breaks made CRLF)."""
    rendered, envelope = email
    headers = message_headers(rendered, envelope)
    text, html = rendered.text.encode(), rendered.html.encode()
    ours = parsed(multipart_alternative(headers, BOUNDARY, text, html))
    theirs = parsed(stock_message(headers, BOUNDARY, text, html))
    assert [(k, str(v)) for k, v in ours.items()] == [(k, str(v)) for k, v in theirs.items()]
    assert ours["Subject"] == header_safe(rendered.subject)
    assert not ours.defects
    bodies = []
    for message in (ours, theirs):
        plain, rich = message.get_body(("plain",)), message.get_body(("html",))
        assert plain is not None and rich is not None
        bodies.append((plain.get_content(), rich.get_content()))
    assert bodies[0] == bodies[1] == (crlf(rendered.text), crlf(rendered.html))


@pytest.mark.parametrize("boundary", ['a"b', "a\\b", "", "a b", "x" * 71, "a\r\nBcc: x"])
def test_a_boundary_that_is_not_written_as_it_is_is_refused(boundary: str) -> None:
    """Only boundaries that need no quoting or folding: anything else would change the header."""
    with pytest.raises(ValueError):
        multipart_alternative([], boundary, b"", b"")


@given(st.sampled_from(["Subject", "To", "Content-Type", "List-Unsubscribe-Post"]), st.text())
def test_our_header_lines_are_what_compat32_writes(name: str, value: str) -> None:
    """Short plain values skip the folding machinery and still come out byte for byte the same."""
    assert header_line(name, value) + b"\r\n" == stock_headers((name, value))


@given(st.text(st.sampled_from('ab ;,="<>@.~'), min_size=60, max_size=120))
def test_plain_values_around_the_line_length_are_compared_too(value: str) -> None:
    """The same on printable ASCII near 78 columns, where the short path ends."""
    assert header_line("To", value) + b"\r\n" == stock_headers(("To", value))


@given(st.text(st.sampled_from("ab ·…é日=?-"), min_size=1, max_size=80))
def test_a_subject_written_as_one_encoded_word_is_what_header_would_write(value: str) -> None:
    """A short non-ASCII Subject skips Header's folding and still comes out byte for byte the
    same as the Header the email package would fold."""
    theirs: str | Header = Header(value, _BASE64_UTF8, header_name="Subject")
    if value.isascii() and "=?" not in value:
        theirs = value
    assert header_line("Subject", _header(value)) + b"\r\n" == stock_headers(("Subject", theirs))
