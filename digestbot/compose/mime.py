"""Compose stage: a text and an HTML body as one multipart/alternative message, SMTP-ready."""

from __future__ import annotations

import quopri
import re
from collections.abc import Sequence
from email.header import Header

CRLF = b"\r\n"
# RFC 5322's recommended line length, which the email package's compat32 policy folds to.
MAX_LINE = 78
# RFC 2046 boundary characters (the space aside): nothing in them needs quoting or escaping.
_BOUNDARY = re.compile(r"[0-9A-Za-z'()+_,./:=?-]{1,70}")


def transfer_encoding(octets: bytes) -> str:
    """7bit or 8bit (by what the body holds) while every line fits SMTP's 998 octets
    (RFC 5322 2.1.1), else quoted-printable, whose soft line breaks keep long lines
    (inlined CSS) readable."""
    if max(map(len, octets.splitlines()), default=0) > 998:
        return "quoted-printable"
    return "7bit" if octets.isascii() else "8bit"


def multipart_alternative(
    headers: Sequence[tuple[str, str | Header | bytes]], boundary: str, text: bytes, html: bytes
) -> bytes:
    """The message with `headers` (after its Content-Type and MIME-Version), a text/plain
    and a text/html part of UTF-8 `text` and `html`, and every line ending in CRLF: the
    bytes the email package's BytesGenerator writes for the same message under compat32
    with CRLF line endings and no "From " mangling (tests compare)."""
    if not _BOUNDARY.fullmatch(boundary):
        raise ValueError(f"not a MIME boundary of our own: {boundary!r}")
    lines = [
        header_line("Content-Type", f'multipart/alternative; boundary="{boundary}"'),
        header_line("MIME-Version", "1.0"),
        *(header_line(name, value) for name, value in headers),
    ]
    delimiter = b"--" + boundary.encode("ascii")
    return b"".join(
        [
            *lines,
            CRLF,
            delimiter + CRLF,
            _part(text, "plain"),
            CRLF + delimiter + CRLF,
            _part(html, "html"),
            CRLF + delimiter + b"--" + CRLF,
        ]
    )


def header_line(name: str, value: str | Header | bytes) -> bytes:
    """`name: value` folded as compat32 folds it, with the email package's Header (which
    also writes non-ASCII text as RFC 2047 words), ending in CRLF; bytes are a value folded
    and encoded already, written as they are."""
    if isinstance(value, bytes):
        return f"{name}: ".encode("ascii") + value + CRLF
    if (
        isinstance(value, str)
        and value.isascii()
        and value.isprintable()
        and len(name) + 2 + len(value) <= MAX_LINE
    ):
        # Header comes out with such a value unchanged, after ~0.01 ms of folding machinery
        # a line (a quarter of a digest's build); tests compare the two.
        return f"{name}: {value}\r\n".encode("ascii")
    header = value if isinstance(value, Header) else Header(value, header_name=name)
    folded = header.encode(linesep="\r\n", maxlinelen=MAX_LINE)
    return f"{name}: {folded}\r\n".encode("ascii")


def _part(octets: bytes, subtype: str) -> bytes:
    """A text part of UTF-8 `octets`, as they are or quoted-printable (`transfer_encoding`);
    only the top level carries MIME-Version (RFC 2045 section 4)."""
    encoding = transfer_encoding(octets)
    body = _lf(octets)
    if encoding == "quoted-printable":
        # quopri is the standard library's C encoder (the email charset's own is pure Python
        # and costs milliseconds on a 50 kB part); it drops a lone CR before a CRLF, hence LF.
        body = quopri.encodestring(body)
    head = (
        f'Content-Type: text/{subtype}; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {encoding}\r\n\r\n"
    )
    return head.encode("ascii") + body.replace(b"\n", CRLF)


def _lf(octets: bytes) -> bytes:
    """`octets` with every CRLF and lone CR made LF: the email package's generator ends every
    line it splits on any of the three with the same separator."""
    if b"\r" in octets:
        return octets.replace(CRLF, b"\n").replace(b"\r", b"\n")
    return octets
