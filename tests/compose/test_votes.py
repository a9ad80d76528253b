"""Tests for the feedback links under each paper: "More like this" and "Not relevant"."""

from __future__ import annotations

import os
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

import pytest
from samples import fixture_digest

from digestbot.compose.render import Rendered, make_environment, render_digest
from digestbot.compose.votes import VoteLinks
from digestbot.models import Digest

UPDATE_GOLDEN = os.environ.get("DIGESTBOT_UPDATE_GOLDEN") == "1"  # read before fixtures clear it
GOLDEN = Path(__file__).parent / "golden"
NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
UNSUBSCRIBE = "https://lab.example/u/reader-token"


def links_for(digest: Digest) -> dict[str, VoteLinks]:
    """Links as the pipeline would give them, each naming its paper and vote."""
    return {
        item.paper.id: VoteLinks(
            f"https://lab.example/v/up.{item.paper.id}",
            f"https://lab.example/v/down.{item.paper.id}",
        )
        for item in digest.items
    }


def rendered(kind: str, *, votes: bool) -> tuple[Digest, Rendered]:
    digest = fixture_digest(NOW)
    if kind == "alert":
        digest = replace(digest, items=digest.items[:3], kind="alert", left_out=())
    links = links_for(digest) if votes else None
    return digest, render_digest(make_environment(), digest, unsubscribe=UNSUBSCRIBE, votes=links)


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_each_paper_shows_its_two_vote_links_in_both_parts(kind: str) -> None:
    """Every paper's card and text entry carry its own "More like this" and "Not relevant"
    links, once each, right after the paper's `matched:` line."""
    digest, email = rendered(kind, votes=True)
    text = email.text.replace("\r\n", "\n")
    for item in digest.items:
        pid = item.paper.id
        up, down = f"https://lab.example/v/up.{pid}", f"https://lab.example/v/down.{pid}"
        assert email.html.count(f'href="{up}"') == 1 and email.html.count(f'href="{down}"') == 1
        assert re.search(
            rf'<a [^>]*href="{re.escape(up)}">More like this</a> &middot; '
            rf'<a [^>]*href="{re.escape(down)}">Not relevant</a>',
            email.html,
        )
        assert f"\n    More like this: {up}\n    Not relevant:   {down}\n" in text
    cards = email.html.split('<td class="card"')[1:]
    papers = [card for card in cards if '<h2 class="title"' in card]
    assert len(papers) == len(digest.items)
    for card in papers:
        assert card.index('class="why"') < card.index("More like this") < card.index("</td>")


@pytest.mark.parametrize("kind", ["digest", "alert"])
def test_without_vote_links_no_paper_shows_any(kind: str) -> None:
    """Without links (no DIGESTBOT_PUBLIC_URL) neither part mentions voting at all."""
    _, email = rendered(kind, votes=False)
    for part in (email.text, email.html):
        assert "More like this" not in part and "Not relevant" not in part
        assert "/v/" not in part
    assert 'class="votes"' not in email.html


def test_a_paper_without_links_in_the_mapping_shows_none() -> None:
    """Links are looked up by paper id: a paper missing from the mapping has no vote line."""
    digest = fixture_digest(NOW)
    first, *rest = digest.items
    links = {item.paper.id: links_for(digest)[item.paper.id] for item in rest}
    email = render_digest(make_environment(), digest, votes=links)
    assert email.text.count("More like this:") == len(rest)
    assert f"up.{first.paper.id}" not in email.html


def test_vote_links_are_escaped_in_the_html() -> None:
    """A link with markup characters stays inside its attribute, escaped."""
    digest = fixture_digest(NOW)
    pid = digest.items[0].paper.id
    hostile = VoteLinks('https://lab.example/v/a"><script>x</script>&b', "https://lab.example/v/d")
    html = render_digest(make_environment(), digest, votes={pid: hostile}).html
    assert "<script>x" not in html
    assert 'href="https://lab.example/v/a&#34;&gt;&lt;script&gt;x&lt;/script&gt;&amp;b"' in html


@pytest.mark.parametrize("url", ["javascript:alert(1)", "mailto:a@b.example", "/v/relative", ""])
def test_only_http_urls_can_be_vote_links(url: str) -> None:
    """A vote link that is not an http(s) URL is refused before it can reach an href."""
    with pytest.raises(ValueError, match="http"):
        VoteLinks(url, "https://lab.example/v/d")
    with pytest.raises(ValueError, match="http"):
        VoteLinks("https://lab.example/v/u", url)


@pytest.mark.parametrize("inline_css", [False, True])
def test_the_vote_links_are_small_and_quiet(inline_css: bool) -> None:
    """The vote line is small grey text with underlined links, not a button, styled the same
    whether prestyled or inlined as it renders."""
    _, email = rendered("digest", votes=True)
    if inline_css:
        digest = fixture_digest(NOW)
        env = make_environment(inline_css=True)
        email = render_digest(env, digest, unsubscribe=UNSUBSCRIBE, votes=links_for(digest))
    line = re.search(r'<p class="votes" style="([^"]*)">(.*?)</p>', email.html)
    assert line, "no vote line"
    assert "font-size:12px" in line[1].replace(" ", "")
    assert 'class="button"' not in line[2]
    assert "text-decoration:underline" in line[2].replace(" ", "")


def test_the_text_part_with_vote_links_keeps_to_80_columns_but_for_urls() -> None:
    """Only a line holding a label and one unbreakable URL may be wider than 80."""
    _, email = rendered("digest", votes=True)
    for line in email.text.splitlines():
        assert len(line) <= 80 or re.fullmatch(r"\s*([\w ]+: +)?\S+", line), line


def test_it_renders_an_alert_with_vote_links_as_the_golden_text() -> None:
    """The text part of an alert with vote links matches tests/compose/golden/alert-votes.txt
    (regenerate with DIGESTBOT_UPDATE_GOLDEN=1)."""
    _, email = rendered("alert", votes=True)
    path = GOLDEN / "alert-votes.txt"
    if UPDATE_GOLDEN:
        path.write_text(email.text, encoding="utf-8")
    assert email.text == path.read_text(encoding="utf-8"), "alert-votes.txt differs"
