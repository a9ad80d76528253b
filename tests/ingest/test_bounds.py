"""Tests for the bounds and cleaning every listing goes through before it is stored."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Engine

from digestbot.ingest import papers
from digestbot.ingest.bounds import MAX_AUTHORS, MAX_PAPERS, MAX_TITLE, bounded
from digestbot.ingest.textnorm import safe_text
from digestbot.models import ListedPaper, Listing

ESCAPES = "\x1b]0;owned\x07\x1b[2J\x9b31m"
BIDI = "\u202e\u2066\u200f\u061c"


def test_safe_text_removes_controls_and_bidi_controls() -> None:
    """C0, C1 and bidi controls go; a newline stays only when asked for."""
    assert safe_text(f"a{ESCAPES}b{BIDI}c\nd") == "a ]0;owned  [2J 31mbc d"
    assert safe_text("a\r\nb\u2028c", newlines=True) == "a \nb c"


def test_a_huge_title_abstract_and_author_list_are_cut_and_noted(
    engine: Engine, clock: datetime
) -> None:
    """A 5 MB title, a 1 MB abstract and 3,000 authors are stored cut to the bounds, the
    true author count kept, and the ingest result says what was cut."""
    huge = ListedPaper(
        title="Attention " * 500_000,
        abstract="word " * 200_000,
        authors=tuple(f"Author {n}" for n in range(3_000)),
        arxiv_id="2501.00001",
    )
    result = papers.ingest(engine, Listing("big.json", (huge,)), now=clock)
    (stored,) = papers.papers_seen_since(engine, None)
    assert len(stored.title) == MAX_TITLE and stored.title.endswith("…")
    assert len(stored.abstract) == 20_000
    assert len(stored.authors) == MAX_AUTHORS and stored.author_count == 3_000
    (note,) = result.trimmed
    assert note.startswith("big.json: paper 1 (Attention Attention")
    assert note.endswith(
        "cut authors to 500 of 3,000, title to 1,000 characters, abstract to 20,000 characters"
    )


def test_titles_are_stored_without_escape_sequences(engine: Engine, clock: datetime) -> None:
    """Terminal escapes and bidi controls in a listing never reach the database."""
    listed = ListedPaper(title=f"Fast{ESCAPES} attention{BIDI}", abstract=f"An{ESCAPES} abstract")
    result = papers.ingest(engine, Listing("feed", (listed,)), now=clock)
    (stored,) = papers.papers_seen_since(engine, None)
    assert stored.title == "Fast ]0;owned [2J 31m attention"
    assert stored.abstract == "An ]0;owned [2J 31m abstract"
    assert result.trimmed == ()


def test_a_document_keeps_at_most_the_bounded_number_of_papers() -> None:
    """Papers past MAX_PAPERS are dropped, with one note saying how many there were."""
    many = tuple(ListedPaper(f"Paper {n}", "") for n in range(MAX_PAPERS + 7))
    kept = bounded(Listing("feed", many))
    assert len(kept.papers) == MAX_PAPERS and kept.papers[-1].title == f"Paper {MAX_PAPERS - 1}"
    assert kept.trimmed == ("feed: kept the first 5,000 of 5,007 papers",)
