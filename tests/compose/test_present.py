"""Tests for what each paper of an email shows: authors, excerpts, highlights and groups."""

from __future__ import annotations

import textwrap
from datetime import UTC, date, datetime

from hypothesis import given, settings
from hypothesis import strategies as st
from markupsafe import escape

from digestbot.compose.present import (
    Excerpt,
    authors_line,
    excerpt,
    home_rule,
    present_digest,
    present_item,
    rule_terms,
)
from digestbot.compose.words import trim_words, wrap
from digestbot.models import Digest, DigestItem, Match, Paper, Rule, Subscriber
from digestbot.rules.highlight import find_terms

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)
FILLER = "Background words that say nothing in particular about the method. " * 8


def paper(pid: str = "p", title: str = "T", abstract: str = "a", **kw: object) -> Paper:
    return Paper(pid, title, abstract, NOW, **kw)  # type: ignore[arg-type]


def test_it_shows_three_authors_then_et_al() -> None:
    """Up to three names are listed; more end in "et al."; no names falls back to a count."""
    assert authors_line(paper(authors=("A", "B", "C"))) == "A, B, C"
    assert authors_line(paper(authors=("A", "B", "C", "D"))) == "A, B, C et al."
    assert authors_line(paper(author_count=6)) == "6 authors"
    assert authors_line(paper(author_count=1, organisation="Acme")) == "1 author · Acme"
    assert authors_line(paper()) == ""


def test_it_excerpts_about_300_characters_around_the_first_match() -> None:
    """A late first match moves the window to its sentence; both cuts fall on word boundaries
    with an ellipsis, and the match stays highlighted inside it."""
    text = f"{FILLER}Here sparse attention appears. {FILLER}"
    found = excerpt(text, find_terms(text, ("sparse attention",), {}))
    assert found.text.startswith("… Here sparse attention") and found.text.endswith("…")
    assert len(found.text) <= 303
    body = found.text[2:-1]
    start = text.find(body)
    assert start > 0 and text[start - 1] == " " and text[start + len(body)] in " .,;:"
    assert [found.text[s:e] for s, e in found.spans] == ["sparse attention"]
    abbreviated = f"{FILLER}Methods, e.g. the sparse attention kernel, help. {FILLER}"
    cut = excerpt(abbreviated, find_terms(abbreviated, ("sparse attention",), {}))
    assert cut.text.startswith("… Methods, e.g. the sparse attention")  # not "… the sparse"


def test_it_keeps_the_start_of_the_abstract_when_the_match_is_early() -> None:
    """A match in the first two thirds keeps the abstract's opening, cut only at the end."""
    text = f"We study linear attention. {FILLER}"
    found = excerpt(text, find_terms(text, ("linear attention",), {}))
    assert found.text.startswith("We study linear attention.")
    assert found.text.endswith("…") and not found.text.endswith(".…")
    late = f"{FILLER[:260]}xxxxxxxxxx yyyyyyyyy {'w' * 30} linear attention {FILLER}"
    cut = excerpt(late, find_terms(late, ("linear attention",), {}))
    assert cut.text.startswith("… ") and "linear attention" in cut.text  # no sentence near
    assert excerpt("short text", []).text == "short text"


def test_it_escapes_before_it_highlights() -> None:
    """Markup in the abstract stays text; only our own <mark> tags are markup."""
    text = '<script>alert("x")</script> attention <b>'
    html = str(Excerpt(text, tuple(find_terms(text, ("attention",), {}))).html())
    assert html == (
        "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; "
        '<mark class="hl">attention</mark> &lt;b&gt;'
    )


@st.composite
def marked_text(draw: st.DrawFn) -> Excerpt:
    """A text of plain and HTML-special characters with sorted, disjoint ranges in it."""
    text = draw(st.text(st.sampled_from("ab <>&'\"é…"), max_size=40))
    cuts = sorted(draw(st.sets(st.integers(0, len(text)), max_size=6)))
    return Excerpt(text, tuple(zip(cuts[::2], cuts[1::2], strict=False)))


@given(marked_text())
def test_an_excerpt_is_escaped_piece_by_piece_with_or_without_special_characters(
    shown: Excerpt,
) -> None:
    """html() equals escaping every piece between the marks, whether or not the text holds a
    character markupsafe changes (text without one skips the escape calls)."""
    expected, pos = "", 0
    for start, end in shown.spans:
        expected += f'{escape(shown.text[pos:start])}<mark class="hl">'
        expected += f"{escape(shown.text[start:end])}</mark>"
        pos = end
    assert str(shown.html()) == expected + str(escape(shown.text[pos:]))


def test_it_offers_only_http_links() -> None:
    """The title links to the HF page, else arXiv; javascript: URLs are dropped."""
    item = DigestItem(
        paper(
            links=(
                ("abs", "https://arxiv.org/abs/1"),
                ("pdf", "javascript:alert(1)"),
                ("code", " https://github.com/x/y "),
            )
        ),
        Match(("r",), ("t",), ("t",), 11.0),
    )
    view = present_item(item, {})
    assert (view.url, view.pdf, view.code) == (
        "https://arxiv.org/abs/1",
        None,
        "https://github.com/x/y",
    )


def test_it_groups_papers_by_the_rule_that_explains_them_best() -> None:
    """A paper sits under the rule with most title terms; groups follow their best paper and
    papers go by score, then upvotes."""
    rules = (Rule("Quant", any=("quantiz*",)), Rule("Diffusion", any=("diffusion",)))
    both = Match(("Quant", "Diffusion"), ("quantiz*", "diffusion"), ("diffusion",), 12.0)
    assert home_rule(both, rule_terms(rules)) == "Diffusion"
    items = (
        DigestItem(paper("a", "A", upvotes=1), Match(("Quant",), ("quantiz*",), (), 1.0)),
        DigestItem(paper("b", "B", upvotes=9), both),
        DigestItem(paper("c", "C", upvotes=50), Match(("Diffusion",), ("diffusion",), (), 1.0)),
        DigestItem(paper("d", "D", upvotes=2), Match(("Quant",), ("quantiz*",), (), 1.0)),
    )
    sub = Subscriber(1, "a@example.org", "A", rules, timezone="Pacific/Auckland")
    view = present_digest(Digest(sub, items, NOW, "k"))
    assert [(g.name, [p.title for p in g.papers]) for g in view.groups] == [
        ("Diffusion", ["B", "C"]),
        ("Quant", ["D", "A"]),
    ]
    assert view.day == date(2026, 11, 3) and view.count == 4
    late = present_digest(Digest(sub, items, datetime(2026, 11, 3, 20, tzinfo=UTC), "k"))
    assert late.day == date(2026, 11, 4)  # the subscriber's own calendar day


def test_it_wraps_text_without_breaking_urls() -> None:
    """Lines fold at 80 columns with a hanging indent; a long URL stays whole."""
    url = "https://example.org/" + "x" * 90
    text = wrap(f"see {url} and " + "word " * 40, 80, "    ", " 1. ")
    lines = text.splitlines()
    assert lines[0] == " 1. see"
    assert lines[1] == f"    {url}"
    assert all(len(line) <= 80 for line in lines[2:])
    assert all(line.startswith("    ") for line in lines[1:])


@settings(max_examples=300, deadline=None)
@given(
    words=st.lists(st.text("ab:/.", min_size=1, max_size=15), min_size=1, max_size=25),
    width=st.integers(10, 60),
    indent=st.sampled_from(["", "  ", "    "]),
    first=st.sampled_from([None, "", " 1. ", "12. "]),
)
def test_wrap_folds_as_the_standard_library_does(
    words: list[str], width: int, indent: str, first: str | None
) -> None:
    """`wrap` is a faster `textwrap.fill` that never breaks a word (one-line text included)."""
    expected = textwrap.TextWrapper(
        width=width,
        initial_indent=indent if first is None else first,
        subsequent_indent=indent,
        break_long_words=False,
        break_on_hyphens=False,
    ).fill(" ".join(words))
    assert wrap(" ".join(words), width, indent, first) == expected
    assert wrap("  ".join(words) + "\n", width, indent, first) == expected


def test_trim_words_cuts_at_a_word_boundary_with_an_ellipsis() -> None:
    """Long text is cut before the limit at a space and ends with an ellipsis."""
    assert trim_words("alpha beta gamma delta", 12) == "alpha beta…"
    assert trim_words("short", 12) == "short"
