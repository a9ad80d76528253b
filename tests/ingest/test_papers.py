"""Tests for storing papers: stable ids, dedupe and first-seen times."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from conftest import LISTINGS
from sqlalchemy import Engine

from digestbot.ingest import read_listing
from digestbot.ingest.papers import ingest, paper_id, papers_seen_since
from digestbot.models import ListedPaper, Listing


def test_the_id_is_the_arxiv_id_when_known() -> None:
    """A paper with an arXiv id is stored under it."""
    assert paper_id(ListedPaper("T", "A", arxiv_id="2410.12345")) == "2410.12345"


def test_titles_differing_only_in_case_and_punctuation_share_an_id() -> None:
    """The title hash ignores case, punctuation and spacing."""
    a = paper_id(ListedPaper("Self-Attention Is All: You Need", "x"))
    b = paper_id(ListedPaper("self attention  is all you need", "y"))
    assert a == b
    assert a != paper_id(ListedPaper("Self-Attention Is Not All You Need", "x"))


def test_ingesting_every_shared_listing_stores_each_distinct_paper_once(
    engine: Engine, clock: datetime
) -> None:
    """All four listings together store their distinct papers, repeats across days merged."""
    listings = [read_listing(p, today=clock.date()) for p in sorted(LISTINGS.glob("*.txt"))]
    results = [ingest(engine, lst, now=clock) for lst in listings]
    distinct = {paper_id(p) for lst in listings for p in lst.papers}
    assert sum(r.new for r in results) == len(distinct) == len(papers_seen_since(engine, None))
    assert sum(r.known for r in results) == sum(len(lst.papers) for lst in listings) - len(distinct)


def test_ingesting_the_same_listing_twice_adds_nothing(engine: Engine, clock: datetime) -> None:
    """The second ingest finds every paper already known and keeps first-seen times."""
    (path,) = LISTINGS.glob("000_*.txt")
    first = ingest(engine, read_listing(path, today=clock.date()), now=clock)
    later = clock + timedelta(days=1)
    second = ingest(engine, read_listing(path, today=later.date()), now=later)
    assert (first.new, first.known) == (39, 0)
    assert (second.new, second.known) == (0, 39)
    stored = papers_seen_since(engine, None)
    assert len(stored) == 39
    assert {p.first_seen for p in stored} == {clock}


def test_a_later_sighting_fills_gaps_and_raises_upvotes(engine: Engine, clock: datetime) -> None:
    """Seen again with metadata, a paper gains its date and the higher upvote count."""
    bare = Listing("a", (ListedPaper("Graph Transformers", "Abstract."),))
    rich = Listing(
        "b",
        (
            ListedPaper(
                "Graph transformers", "Abstract.", date(2025, 1, 2), upvotes=7, author_count=3
            ),
        ),
    )
    ingest(engine, bare, now=clock)
    ingest(engine, rich, now=clock + timedelta(hours=5))
    (paper,) = papers_seen_since(engine, None)
    assert (paper.published, paper.upvotes, paper.author_count) == (date(2025, 1, 2), 7, 3)
    assert paper.first_seen == clock
    assert paper.title == "Graph Transformers"
