"""Tests for rendering digests into safe RFC 5322 messages."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from html import unescape
from pathlib import Path

import pytest
from helpers import HOSTILE, NOW, a_digest
from hypothesis import given, settings
from hypothesis import strategies as st
from samples import fixture_digest

from digestbot.compose.render import (
    Envelope,
    build_message,
    header_safe,
    make_environment,
    message_id,
    render_admin,
    render_digest,
)
from digestbot.errors import ConfigError
from digestbot.models import Digest, DigestItem, Match, Paper, Subscriber


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
    raw = build_message(rendered, envelope)
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
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in html
    assert msg["Bcc"] is None
    headers = raw.split(b"\r\n\r\n", 1)[0]
    assert b"\nBcc:" not in headers
    assert "Bcc: x@evil.example" in str(msg["To"])  # folded into the display name, harmless


@pytest.mark.parametrize("kind", ["digest", "alert"])  # an alert's subject is all ASCII
@pytest.mark.parametrize(
    "word", ["=?utf-8?q?x=0D=0ABcc:_x@evil?=", "=?utf-8?b?eA0KQmNjOiB4QGV2aWw=?="]
)
def test_encoded_words_in_paper_text_stay_literal_text(word: str, kind: str) -> None:
    """A title, rule name or subscriber name spelling an RFC 2047 word with CRLF inside reads
    back as those very characters, not as a line break (mail clients decode such words)."""
    sub = Subscriber(1, "alice@example.org", f"Eve {word}", ())
    item = DigestItem(Paper("p1", word, "abstract", NOW), Match((word,), ("t",), (), 1.0))
    _, msg = message_for(Digest(sub, (item,), NOW, "k", kind=kind))
    for header in ("Subject", "To"):
        value = str(msg[header])
        assert "\r" not in value and "\n" not in value
        assert word in value
    assert msg["Bcc"] is None


def test_header_safe_removes_controls_and_folds_space() -> None:
    """Control characters and line separators become single spaces."""
    assert header_safe("a\r\nb\tc\x00d\u2028e") == "a b c d e"


def test_header_safe_removes_bidi_controls() -> None:
    """Right-to-left overrides, isolates and marks are dropped from header values."""
    assert header_safe("a\u202eb\u2066c\u2069d\u200e\u200fe\u061cf\u202ag") == "abcdefg"


def test_an_alert_subject_carries_no_right_to_left_override() -> None:
    """A title hiding U+202E and an escape sequence gives an alert subject with neither."""
    title = "Harmless \u202efdp.exe\x1b[2J paper"
    sub = Subscriber(1, "alice@example.org", "Alice", ())
    item = DigestItem(Paper("p1", title, "abstract", NOW), Match(("r",), ("paper",), (), 1.0))
    _, msg = message_for(Digest(sub, (item,), NOW, "k", kind="alert"))
    subject = str(msg["Subject"])
    assert "Harmless fdp.exe [2J paper" in subject
    assert "\u202e" not in subject and "\x1b" not in subject


def test_the_text_part_reads_at_80_columns() -> None:
    """No line of the text part is wider than 80 characters, but one holding a single
    unbreakable URL after its label."""
    _, msg = message_for(a_digest())
    text = msg.get_body(("plain",)).get_content()
    assert "1. Flash attention, again" in text
    assert "matched: attention (Efficient attention)" in text
    for line in text.splitlines():
        assert len(line) <= 80 or re.fullmatch(r"\s*(\w+: +)?https?://\S+", line), line


def test_a_user_template_overrides_the_bundled_one(tmp_path: Path) -> None:
    """DIGESTBOT_TEMPLATES_DIR is searched first; missing templates fall back."""
    (tmp_path / "digest.subject.txt").write_text("Papers for {{ subscriber.name }}")
    _, msg = message_for(a_digest(), tmp_path)
    assert msg["Subject"] == "Papers for Alice"
    assert "Flash attention" in msg.get_body(("html",)).get_content()


def test_templates_calling_the_one_paper_macros_still_render(tmp_path: Path) -> None:
    """A user's templates copied before cards() and entries() keep working with card and entry."""
    (tmp_path / "digest.txt").write_text(
        '{% from "paper.txt" import entry %}\n'
        "{% for group in view.groups %}{% for p in group.papers %}\n"
        "{{ entry(p, loop.index) -}}\n"
        "{% endfor %}{% endfor %}\n"
    )
    (tmp_path / "digest.html").write_text(
        '{% from "paper.html" import card %}<table>\n'
        "{% for group in view.groups %}{% for p in group.papers %}"
        "{{ card(p) }}"
        "{% endfor %}{% endfor %}\n</table>\n"
    )
    _, bundled = message_for(a_digest())
    _, msg = message_for(a_digest(), tmp_path)
    text = msg.get_body(("plain",)).get_content()
    assert text.startswith(" 1. Flash attention, again\r\n")
    assert text in bundled.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    assert html.count('class="title"') == 1
    assert '<h2 class="title">Flash attention, again</h2>' in html


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
    assert re.search(r'<h2[^>]*><a [^>]*href="https://huggingface.co/papers/2501.1"', html)
    assert 'href="https://arxiv.org/pdf/2501.1"' in html
    assert "javascript:" not in html
    assert "https://huggingface.co/papers/2501.1" in msg.get_body(("plain",)).get_content()


def test_one_click_unsubscribe_headers_carry_a_signed_https_link() -> None:
    """With a reader's link, List-Unsubscribe has mailto and https, plus the One-Click POST."""
    link = "https://papers.lab.example/u/MQ.signature"
    rendered = render_digest(make_environment(), a_digest())
    envelope = Envelope(
        "digestbot@example.org",
        "digestbot",
        "alice@example.org",
        "Alice",
        "<m@example.org>",
        NOW,
        unsubscribe_url=link,
    )
    msg = message_from_bytes(build_message(rendered, envelope), policy=policy.default)
    value = " ".join(str(msg["List-Unsubscribe"]).split())
    assert (
        value
        == f"<mailto:digestbot@example.org?subject=unsubscribe%20alice%40example.org>, <{link}>"
    )
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"


def test_without_an_https_link_there_is_no_one_click_header() -> None:
    """Without a signed link List-Unsubscribe holds only the mailto, and List-Unsubscribe-Post
    (which RFC 8058 allows only beside an HTTPS URI) is absent."""
    _, msg = message_for(a_digest())
    value = " ".join(str(msg["List-Unsubscribe"]).split())
    assert value == "<mailto:digestbot@example.org?subject=unsubscribe%20alice%40example.org>"
    assert msg["List-Unsubscribe-Post"] is None


hostile = st.lists(
    st.sampled_from(
        [
            *"ab <>\"'=?:;,@\r\n\t\x00\x0b\u2028\u0085é",
            *("=?utf-8?q?", "=?utf-8?b?", "?=", "=0D=0A", "DQpCY2M6IHhAZXZpbA==", "_"),
            "\r\nBcc: x@evil",
        ]
    ),
    max_size=20,
).map("".join)


@settings(max_examples=100, deadline=None)
@given(name=hostile, rule=hostile, title=hostile, kind=st.sampled_from(["digest", "alert"]))
def test_no_input_can_add_or_break_a_header(name: str, rule: str, title: str, kind: str) -> None:
    """Whatever names, rule names and titles hold, in digests and alerts, the headers stay one
    line each and no new header appears."""
    sub = Subscriber(1, "alice@example.org", name, ())
    paper = Paper("p1", title or "t", "abstract", NOW)
    match = Match((rule or "r",), ("t",), (), 1.0)
    raw, msg = message_for(Digest(sub, (DigestItem(paper, match),), NOW, "k", kind=kind))
    head = raw.split(b"\r\n\r\n", 1)[0].decode("ascii")
    lines = head.split("\r\n")
    assert all("\r" not in line and "\n" not in line for line in lines)
    names = [line.split(":", 1)[0] for line in lines if line and not line[0].isspace()]
    assert sorted(names) == sorted(
        [
            "Subject",
            "From",
            "To",
            "Date",
            "Message-ID",
            "List-Unsubscribe",
            "MIME-Version",
            "Content-Type",
        ]
    )
    for header in ("Subject", "To"):
        value = str(msg[header])
        assert "\r" not in value and "\n" not in value and "\x00" not in value


UPDATE_GOLDEN = os.environ.get("DIGESTBOT_UPDATE_GOLDEN") == "1"  # read before fixtures clear it
GOLDEN = Path(__file__).parent / "golden"
GOLDEN_NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://example.org/unsubscribe?email=ada%40example.org&token=0123abcd"
CONTACT = "Ada's lab <papers@lab.example>"


def fixture_alert() -> Digest:
    """The first three papers of the fixture digest, as an alert."""
    digest = fixture_digest(GOLDEN_NOW)
    return replace(digest, items=digest.items[:3], kind="alert", left_out=())


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_it_renders_the_fixture_listings_as_the_golden_text(kind: str) -> None:
    """Subject and text part of a digest built from the saved listings match tests/golden
    (regenerate with DIGESTBOT_UPDATE_GOLDEN=1)."""
    digest = fixture_digest(GOLDEN_NOW) if kind == "digest" else fixture_alert()
    rendered = render_digest(make_environment(), digest, unsubscribe=UNSUBSCRIBE, contact=CONTACT)
    for name, actual in (
        (f"{kind}.subject.txt", rendered.subject + "\n"),
        (f"{kind}.txt", rendered.text),
    ):
        path = GOLDEN / name
        if UPDATE_GOLDEN:
            path.write_text(actual, encoding="utf-8")
        assert actual == path.read_text(encoding="utf-8"), f"{name} differs from the golden file"


def test_the_text_part_has_every_paper_and_link_of_the_html_part_within_80_columns() -> None:
    """Same papers, same links; only a line holding one unbreakable URL may be wider."""
    rendered = render_digest(make_environment(), fixture_digest(GOLDEN_NOW))
    links = {unescape(u) for u in re.findall(r'href="(https?://[^"]+)"', rendered.html)}
    assert links and links == set(re.findall(r"https?://\S+", rendered.text)) - {
        u for u in re.findall(r"https?://\S+", rendered.text) if "subject=" in u
    }
    for item in fixture_digest(GOLDEN_NOW).items:
        assert " ".join(item.paper.title.split())[:40] in " ".join(rendered.text.split())
    for line in rendered.text.splitlines():
        assert len(line) <= 80 or re.fullmatch(r"\s*(\w+: +)?\S+", line), line


def test_the_html_is_inlined_self_contained_and_keeps_its_media_queries() -> None:
    """Styles are in style attributes, the dark-mode and narrow-screen @media rules stay in a
    <style> tag, and there is no script, external image, font or stylesheet."""
    html = render_digest(make_environment(), fixture_digest(GOLDEN_NOW)).html
    assert re.search(r'<h2 class="title" style="[^"]*font-size: ?17px', html)
    style = re.findall(r"<style[^>]*>(.*?)</style>", html, re.S)
    assert len(style) == 1
    assert "@media (prefers-color-scheme: dark)" in style[0]
    assert "max-width: 480px" in style[0]
    assert ".title {" not in style[0].split("@media")[0]  # plain rules were inlined
    assert html.encode().find(b'<meta charset="utf-8">') < 1024  # browsers look that far
    for banned in ("<script", "<img", "<link", "@import", "url(", "javascript:"):
        assert banned not in html.lower(), banned
    assert re.search(r'<div class="preheader" style="display: ?none', html)
    assert re.search(r'class="container"[^>]*max-width: ?640px', html)


def test_the_footer_says_what_it_is_who_sends_it_how_to_change_and_how_to_unsubscribe() -> None:
    """Both parts say what the email is and for whom, name the contact to write to, and link
    the unsubscribe."""
    rendered = render_digest(
        make_environment(), a_digest(), unsubscribe=UNSUBSCRIBE, contact="papers@lab.example"
    )
    text = " ".join(rendered.text.split())
    for part in (text, rendered.html):
        assert "A daily digest of new papers matching your rules" in part
        assert "for alice@example.org" in part
        assert "reply to this email or write to papers@lab.example" in part
    assert f"Unsubscribe: {UNSUBSCRIBE}" in rendered.text
    assert f'href="{UNSUBSCRIBE.replace("&", "&amp;")}"' in rendered.html


def test_alerts_use_their_own_shorter_templates() -> None:
    """An alert has the alert subject and no digest header or topic list."""
    rendered = render_digest(make_environment(), fixture_alert())
    assert rendered.subject.startswith("Alert: ")
    assert rendered.subject.endswith("(+2 more)")
    assert "An alert from digestbot" in rendered.text and "Topics:" not in rendered.text
    assert "paper digest" not in rendered.html and "An alert from digestbot" in rendered.html


def test_an_alert_says_how_many_matches_did_not_fit_and_where_they_go() -> None:
    """An alert capped by max_papers does not pass for all the matches: both parts say how
    many more there were and that the digest brings them."""
    alert = replace(fixture_alert(), left_out=("x", "y"))
    rendered = render_digest(make_environment(), alert)
    said = "2 more matching papers did not fit in this alert, which holds at most"
    assert said in " ".join(rendered.text.split())
    assert said in rendered.html and "They come in your next digest." in rendered.html


def test_hostile_abstracts_and_rule_names_are_escaped_around_highlights() -> None:
    """Markup around a matched term stays text and the term is still highlighted."""
    sub = Subscriber(1, "alice@example.org", "<b>Al</b>", ())
    paper = Paper("p1", "T", '<img src=x onerror="alert(1)"> attention </p>', NOW)
    match = Match(("<script>r</script>",), ("attention",), (), 1.0)
    html = render_digest(
        make_environment(), Digest(sub, (DigestItem(paper, match),), NOW, "k")
    ).html
    assert "<img" not in html and "<script" not in html and "<b>Al" not in html
    assert '&lt;img src=x onerror=&#34;alert(1)&#34;&gt; <mark class="hl"' in html


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_an_empty_email_still_renders(kind: str) -> None:
    """A digest with no papers (send_empty) renders every part without error."""
    sub = Subscriber(1, "alice@example.org", "Alice", ())
    rendered = render_digest(make_environment(), Digest(sub, (), NOW, "k", kind=kind))
    assert rendered.subject in ("0 new papers · Nov 3", "Alert: no new papers")
    assert "alice@example.org" in rendered.text and "</html>" in rendered.html


def test_the_operator_notice_is_a_trio_without_list_headers() -> None:
    """The admin notice renders its own three templates, escapes the error it reports and,
    not being list mail, carries no List-Unsubscribe."""
    detail = "hf: HTTP 503 <script>x</script>\nsecond line"
    rendered = render_admin(
        make_environment(),
        "hf failed 2 times\r\nBcc: x@evil",
        detail,
        recipient="ops@example.org",
        now=NOW,
    )
    envelope = Envelope(
        "digestbot@example.org",
        "digestbot",
        "ops@example.org",
        "",
        "<a@example.org>",
        NOW,
        bulk=False,
    )
    msg = message_from_bytes(build_message(rendered, envelope), policy=policy.default)
    assert msg["Subject"] == "[digestbot] hf failed 2 times Bcc: x@evil"
    assert msg["List-Unsubscribe"] is None and msg["Bcc"] is None
    assert [p.get_content_type() for p in msg.iter_parts()] == ["text/plain", "text/html"]
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")  # type: ignore[union-attr]
    html = msg.get_body(("html",)).get_content()  # type: ignore[union-attr]
    assert detail in text and "DIGESTBOT_ADMIN_EMAIL is ops@example.org" in text
    assert "<script>" not in html and "HTTP 503 &lt;script&gt;x&lt;/script&gt;" in html
    assert "second line" in html and "2026-11-03 08:00 UTC" in text


@pytest.mark.parametrize(
    ("left_out", "carry_days", "says"),
    [
        (("a",), 7.0, "1 more matching paper did not fit in this digest, which holds at most"),
        (
            ("a",),
            7.0,
            ". It comes in your next digest, ranked with the new papers, for up to 7 days",
        ),
        (("a", "b"), 1.5, ". They come in your next digests, ranked with the new papers, for up"),
        (("a", "b"), 1.5, "to 1.5 days after they were first listed."),
        (("a",), 0.0, ". It will not be sent."),
        (("a", "b"), 0.0, "2 more matching papers did not fit"),
        (("a", "b"), 0.0, ". They will not be sent."),
    ],
)
def test_the_digest_says_what_becomes_of_the_papers_it_had_no_room_for(
    left_out: tuple[str, ...], carry_days: float, says: str
) -> None:
    """Both parts say how many matching papers did not fit and whether they come later, in
    the reader's words and with the right number."""
    digest = replace(a_digest(), left_out=left_out, carry_days=carry_days)
    email = render_digest(make_environment(), digest)
    assert says in " ".join(email.text.split())
    assert says in " ".join(re.sub(r"<[^>]+>", "", email.html).split())


def test_a_paper_without_a_page_links_to_arxivs_search_for_its_title() -> None:
    """A title-only paper (a saved page) gets one "Search arXiv" link in both parts, marked
    as a search; a paper with a page of its own gets none."""
    sub = Subscriber(1, "alice@example.org", "Alice", ())
    match = Match(("r",), ("t",), (), 1.0)
    bare = Paper("p1", "Attention & <Friends>: a study", "abstract", NOW)
    linked = Paper("p2", "Linked", "abstract", NOW, links=(("abs", "https://arxiv.org/abs/1"),))
    digest = Digest(sub, (DigestItem(bare, match), DigestItem(linked, match)), NOW, "k")
    rendered = render_digest(make_environment(), digest)
    search = (
        "https://arxiv.org/search/?query=Attention+%26+%3CFriends%3E%3A+a+study&searchtype=title"
    )
    assert rendered.text.count("    Search: ") == 1 and f"    Search: {search}" in rendered.text
    hrefs = [unescape(h) for h in re.findall(r'href="([^"]+)"', rendered.html)]
    assert hrefs.count(search) == 1 and "Search arXiv</a>" in rendered.html
