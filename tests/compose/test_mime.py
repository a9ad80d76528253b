"""The message as sent: SMTP-ready bytes from the email package, explicit transfer encodings."""

from __future__ import annotations

from email import message_from_bytes, policy
from email.charset import Charset
from email.generator import BytesGenerator
from email.header import Header
from email.message import EmailMessage
from email.mime.multipart import MIMEMultipart
from email.mime.nonmultipart import MIMENonMultipart
from io import BytesIO
from pathlib import Path

from helpers import HOSTILE, NOW, a_digest
from hypothesis import given
from hypothesis import strategies as st

from digestbot.compose.render import (
    _BASE64_UTF8,
    WIRE,
    Envelope,
    WireGenerator,
    _header,
    build_message,
    make_environment,
    message_id,
    render_digest,
)
from digestbot.delivery.transport import Outbound
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


def test_it_reads_the_envelope_back_from_the_stored_bytes() -> None:
    """Outbound takes the sender and recipient from the headers, display names aside."""
    fast = raw(a_digest(name='Ève, "the" <Tester>'))
    outbound = Outbound.of(fast)
    assert (outbound.sender, outbound.recipients) == (
        "digestbot@example.org",
        ("alice@example.org",),
    )


LINE_BREAKS = st.lists(st.sampled_from(["\r\n", "\r", "\n", "a", " ", "é", "…", "From "])).map(
    "".join
)


@given(LINE_BREAKS, LINE_BREAKS, st.booleans())
def test_our_generator_writes_the_same_bytes_as_the_email_packages(
    text: str, html: str, preamble: bool
) -> None:
    """Bodies written in one piece equal the stock line-by-line output, whatever the breaks."""
    message = MIMEMultipart("alternative", boundary="==b==")
    # a preamble is written with the same hook (and must be ASCII)
    message.preamble = text.encode("ascii", "ignore").decode() if preamble else None
    for body, subtype in ((text, "plain"), (html, "html")):
        part = MIMENonMultipart("text", subtype)
        charset = Charset("utf-8")
        charset.body_encoding = None  # type: ignore[assignment]
        part.set_payload(body, charset)
        message.attach(part)
    ours, stock = BytesIO(), BytesIO()
    WireGenerator(ours, policy=WIRE).flatten(message)
    BytesGenerator(stock, policy=WIRE).flatten(message)
    assert ours.getvalue() == stock.getvalue()


STOCK = policy.compat32.clone(linesep="\r\n", mangle_from_=False)


@given(st.sampled_from(["Subject", "To", "Content-Type", "List-Unsubscribe-Post"]), st.text())
def test_our_policy_folds_every_header_as_compat32_does(name: str, value: str) -> None:
    """Short plain values skip the folding machinery and still come out byte for byte the same."""
    assert WIRE.fold_binary(name, value) == STOCK.fold_binary(name, value)


@given(st.text(st.sampled_from('ab ;,="<>@.~'), min_size=60, max_size=120))
def test_plain_values_around_the_line_length_are_compared_too(value: str) -> None:
    """The same on printable ASCII near 78 columns, where the short path ends."""
    assert WIRE.fold_binary("To", value) == STOCK.fold_binary("To", value)


@given(st.text(st.sampled_from("ab ·…é日=?-"), min_size=1, max_size=80))
def test_a_subject_written_as_one_encoded_word_is_what_header_would_write(value: str) -> None:
    """A short non-ASCII Subject skips Header's folding and still comes out byte for byte the
    same as the Header the email package would fold."""
    ours, theirs = (
        MIMEMultipart("alternative", boundary="b"),
        MIMEMultipart("alternative", boundary="b"),
    )
    ours["Subject"] = _header(value)  # type: ignore[assignment]
    theirs["Subject"] = Header(value, _BASE64_UTF8, header_name="Subject")  # type: ignore[assignment]
    if value.isascii() and "=?" not in value:
        theirs.replace_header("Subject", value)
    written = []
    for message in (ours, theirs):
        out = BytesIO()
        WireGenerator(out, policy=WIRE).flatten(message)
        written.append(out.getvalue())
    assert written[0] == written[1]
