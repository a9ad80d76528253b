"""Compose stage (pure): an email (digest, alert, operator notice) becomes a subject/text/HTML
trio of templates, then an RFC 5322 message."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from email.charset import BASE64, Charset
from email.header import Header
from email.utils import format_datetime, formataddr
from pathlib import Path
from typing import Any
from urllib.parse import quote

import css_inline
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, StrictUndefined, TemplateError

from digestbot.compose.footer import cadence
from digestbot.compose.mime import MAX_LINE, multipart_alternative
from digestbot.compose.present import present_digest
from digestbot.compose.prestyle import INLINER, Styled
from digestbot.compose.votes import VoteLinks
from digestbot.compose.words import plural, short_date, trim_words, wrap
from digestbot.errors import ConfigError
from digestbot.ingest.links import web_url
from digestbot.ingest.textnorm import safe_text
from digestbot.models import Digest, Paper
from digestbot.resources import bundled_path


@dataclass(frozen=True)
class Rendered:
    """The three rendered parts of one email."""

    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class Envelope:
    """Who sends what to whom, and the header values fixed before rendering."""

    sender: str
    sender_name: str
    recipient: str
    recipient_name: str
    message_id: str
    date: datetime
    unsubscribe_url: str | None = None
    # Mail to subscribers carries List-Unsubscribe; the operator's notices do not.
    bulk: bool = True


def make_environment(
    templates_dir: Path | None = None, *, auto_reload: bool = True, inline_css: bool | None = None
) -> Environment:
    """A Jinja2 environment: the user's templates first, the bundled ones second; with
    `auto_reload`, each use of a template checks its file for edits.

    The bundled templates carry their styles from when they are compiled (`prestyle`);
    with templates of the user's own (or `inline_css`), every HTML email is inlined as it
    renders instead, so theirs are styled from the stylesheet whatever they hold.
    """
    loaders = [FileSystemLoader(str(templates_dir))] if templates_dir else []
    loaders.append(FileSystemLoader(str(bundled_path("templates"))))
    env = Environment(
        loader=ChoiceLoader(loaders),
        extensions=[Styled],
        auto_reload=auto_reload,
        autoescape=lambda name: bool(name and name.endswith((".html", ".htm"))),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["trim_words"] = trim_words
    env.filters["web_url"] = web_url
    env.filters["wrap"] = wrap
    env.filters["plural"] = plural
    env.filters["short_date"] = short_date
    env.filters["cadence"] = cadence
    env.globals["page_of"] = page_of
    env.globals["inline_css"] = templates_dir is not None if inline_css is None else inline_css
    return env


def page_of(paper: Paper) -> str | None:
    """The page a paper's title links to, when it is an http(s) URL."""
    return web_url(paper.page())


def header_safe(value: str) -> str:
    """`value` with control characters and bidi controls removed and white space folded to
    single spaces."""
    return " ".join(safe_text(value).split())


def message_id(kind: str, email: str, period_key: str, domain: str) -> str:
    """A Message-ID fixed by what the email is, so a resend reuses it."""
    token = hashlib.sha256(f"{kind}\0{email}\0{period_key}".encode()).hexdigest()[:24]
    return f"<{kind}.{token}@{header_safe(domain)}>"


def unsubscribe_target(sender: str, recipient: str, url: str | None) -> str:
    """Where the footer's unsubscribe link points: the signed HTTPS link when configured,
    otherwise a mail to the sender asking to unsubscribe."""
    if url and web_url(url):
        return url
    return f"mailto:{sender}?subject={quote(f'unsubscribe {recipient}')}"


def render_digest(
    env: Environment,
    digest: Digest,
    *,
    unsubscribe: str = "",
    contact: str = "",
    votes: Mapping[str, VoteLinks] | None = None,
) -> Rendered:
    """Render the subject, text and HTML templates of the digest's kind (digest or alert);
    the footer names `contact` as the one who sends it (see Settings.reader_contact), and
    each paper with links in `votes` (by paper id) shows them."""
    view = present_digest(digest, votes)
    context: dict[str, Any] = {
        "digest": digest,
        "subscriber": digest.subscriber,
        "items": digest.items,
        "count": len(digest.items),
        "rules": view.topics,
        "date": digest.generated_at,
        "view": view,
        "unsubscribe": unsubscribe,
        "contact": contact,
    }
    return render_email(env, digest.kind, context)


def render_admin(
    env: Environment, subject: str, detail: str, *, recipient: str, now: datetime
) -> Rendered:
    """The operator's notice (DIGESTBOT_ADMIN_EMAIL): what keeps failing, and the error."""
    preheader = " ".join(detail.split())[:120]
    context = {
        "subject": subject,
        "detail": detail,
        "recipient": recipient,
        "date": now,
        "view": {"preheader": preheader},  # what layout.html shows before the content
    }
    return render_email(env, "admin", context)


def render_email(env: Environment, name: str, context: Mapping[str, Any]) -> Rendered:
    """Render the trio `name`.subject.txt, `name`.txt and `name`.html; the HTML's stylesheet
    is inlined when the environment says so (its @media rules stay in their own <style>)."""
    try:
        subject = env.get_template(f"{name}.subject.txt").render(context)
        text = env.get_template(f"{name}.txt").render(context)
        html = env.get_template(f"{name}.html").render(context)
        if env.globals["inline_css"]:
            html = INLINER.inline(html)
    except (TemplateError, css_inline.InlineError) as exc:
        raise ConfigError(
            f"cannot render the {name} templates: {exc.__class__.__name__}: {exc}",
            "fix the template, or unset DIGESTBOT_TEMPLATES_DIR to use the bundled ones",
        ) from None
    return Rendered(header_safe(subject), text, html)


def build_message(rendered: Rendered, envelope: Envelope) -> bytes:
    """A multipart/alternative message with a text and an HTML part and safe headers, as the
    bytes that are sent; the same rendered digest and envelope always give the same bytes."""
    # A boundary fixed by the content (not random) so the same digest is the same bytes:
    # what `preview` shows is exactly what is queued and sent.
    text, html = rendered.text.encode(), rendered.html.encode()
    content = hashlib.sha256(envelope.message_id.encode())
    for part in (text, html):
        content.update(b"\0")
        content.update(part)
    boundary = f"==digestbot-{content.hexdigest()[:32]}=="
    return multipart_alternative(message_headers(rendered, envelope), boundary, text, html)


def message_headers(
    rendered: Rendered, envelope: Envelope
) -> list[tuple[str, str | Header | bytes]]:
    """The message's own headers, in order, each value safe to write as it is."""
    headers: list[tuple[str, str | Header | bytes]] = [
        ("Subject", _header(header_safe(rendered.subject))),
        ("From", _address(envelope.sender_name, envelope.sender)),
        ("To", _address(envelope.recipient_name, envelope.recipient)),
        ("Date", format_datetime(envelope.date)),
        ("Message-ID", header_safe(envelope.message_id)),
    ]
    if envelope.bulk:
        headers.extend(_list_headers(envelope))
    return headers


def _list_headers(envelope: Envelope) -> list[tuple[str, str]]:
    """List-Unsubscribe: a mailto:, and the signed HTTPS link when there is one, which alone
    allows one-click unsubscribe (RFC 8058: List-Unsubscribe-Post needs an HTTPS URI)."""
    unsubscribe = quote(f"unsubscribe {envelope.recipient}")
    mailto = f"<mailto:{quote(envelope.sender, safe='@')}?subject={unsubscribe}>"
    if not (envelope.unsubscribe_url and web_url(envelope.unsubscribe_url)):
        return [("List-Unsubscribe", mailto)]
    link = f"<{header_safe(envelope.unsubscribe_url)}>"
    return [
        ("List-Unsubscribe", f"{mailto}, {link}"),
        ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click"),
    ]


def _header(value: str) -> str | Header:
    """Plain ASCII as it is; anything else, or text that spells an RFC 2047 word ("=?"),
    as base64 words of our own, so a mail client shows the text as written instead of
    decoding it (into line breaks, say). The package computes a base64 word's length at
    once (a quoted-printable one it measures character by character)."""
    if value.isascii() and "=?" not in value:
        return value
    # One encoded word when it fits the Subject line (as Header writes it, without
    # Header's folding machinery, ~0.05 ms a digest); longer ones Header folds.
    word = _BASE64_UTF8.header_encode(value)
    if len("Subject: ") + len(word) <= MAX_LINE and len(word) <= 75:
        return word
    return Header(value, _BASE64_UTF8, header_name="Subject")


def _address(name: str, address: str) -> str | bytes:
    """`Name <address>` for a From or To header, never folded inside a quoted name: the name
    quoted when the line fits, else as RFC 2047 words folded between words (which a reader
    of the header cannot mistake for addresses), as it also is when it spells an encoded word
    (clients decode those even inside quotes). Bytes are written as they are: folded here,
    or with a non-ASCII local part in UTF-8 (RFC 6532) for a server that takes SMTPUTF8."""
    name, address = header_safe(name), header_safe(address)
    if name.isascii() and "=?" not in name:
        value = formataddr((name, address)) if name else address
        fits = '"' not in value or len("From: ") + len(value) <= MAX_LINE
        if fits:
            return value if value.isascii() else value.encode("utf-8")
    words = Header(name, _BASE64_UTF8, header_name="From").encode(linesep="\r\n")
    last = len(words) - words.rfind("\n") if "\n" in words else len("From: ") + len(words)
    fold = "\r\n " if last + len(address) + 3 > MAX_LINE else " "
    return f"{words}{fold}<{address}>".encode()


_BASE64_UTF8 = Charset("utf-8")
_BASE64_UTF8.header_encoding = BASE64
