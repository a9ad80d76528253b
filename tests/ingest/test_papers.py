"""Tests for storing papers: stable ids, dedupe and first-seen times."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import date, datetime, timedelta

import pytest
from conftest import LISTINGS
from sqlalchemy import Engine

from digestbot.ingest import read_listing
from digestbot.ingest.papers import IngestResult, ingest, paper_id, papers_seen_since
from digestbot.models import ListedPaper, Listing
from digestbot.store.engine import make_engine


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


IMAGE = ListedPaper(
    "Improving Image Generation with Diffusion Transformers and Rectified Flow",
    "We propose a method that improves image generation with diffusion transformers by "
    "straightening the sampling paths of rectified flow, reaching a better FID on ImageNet "
    "at a quarter of the sampling steps.",
    date(2025, 3, 4),
    authors=("Alice Martin", "Bo Chen"),
)
VIDEO = ListedPaper(
    "Improving Video Generation with Diffusion Transformers and Rectified Flow",
    "We extend diffusion transformers to video generation, adding temporal attention and a "
    "rectified flow objective that keeps motion coherent across frames, and report gains on "
    "UCF-101 and Kinetics.",
    date(2025, 3, 5),
    authors=("Dana Okafor", "Eli Novak"),
)


def stored_pairs(engine: Engine) -> set[tuple[str, str]]:
    return {(p.title, p.abstract) for p in papers_seen_since(engine, None)}


def test_alike_titles_of_different_papers_stay_two_papers(engine: Engine, clock: datetime) -> None:
    """Titles at ratio 95.9 with other authors and another abstract are two papers, each
    with its own title and abstract."""
    ingest(engine, Listing("a", (IMAGE,)), now=clock)
    result = ingest(engine, Listing("b", (VIDEO,)), now=clock)
    assert (result.new, result.known) == (1, 0)
    assert stored_pairs(engine) == {(IMAGE.title, IMAGE.abstract), (VIDEO.title, VIDEO.abstract)}


@pytest.mark.parametrize(
    "differs",
    [
        {"authors": VIDEO.authors, "abstract": ""},
        {"abstract": VIDEO.abstract, "authors": ()},
        {"published": date(2019, 1, 1), "abstract": "", "authors": ()},
    ],
    ids=["authors", "abstract", "year"],
)
def test_any_one_disagreement_keeps_alike_titles_apart(
    engine: Engine, clock: datetime, differs: dict[str, object]
) -> None:
    """Other authors, another abstract or a distant year alone is enough to keep apart."""
    ingest(engine, Listing("a", (IMAGE,)), now=clock)
    other = replace(IMAGE, title=VIDEO.title, **differs)  # type: ignore[arg-type]
    assert ingest(engine, Listing("b", (other,)), now=clock).new == 1
    assert len(papers_seen_since(engine, None)) == 2


def test_a_near_duplicate_with_the_same_authors_still_merges(
    engine: Engine, clock: datetime
) -> None:
    """A typo, other case and punctuation, authors as initials and a cut-off abstract are
    still the same paper."""
    ingest(engine, Listing("a", (IMAGE,)), now=clock)
    again = replace(
        IMAGE,
        title="improving image generation with diffusion transfomers and rectified-flow",
        abstract=IMAGE.abstract[:120],
        authors=("A. Martin", "B. Chen"),
        upvotes=9,
    )
    result = ingest(engine, Listing("b", (again,)), now=clock)
    assert (result.new, result.known) == (0, 1)
    (paper,) = papers_seen_since(engine, None)
    assert (paper.title, paper.abstract, paper.upvotes) == (IMAGE.title, IMAGE.abstract, 9)


def test_two_different_papers_with_one_title_are_both_kept(engine: Engine, clock: datetime) -> None:
    """The very same title published six years earlier is a second paper, with an id of its
    own."""
    ingest(engine, Listing("a", (IMAGE,)), now=clock)
    namesake = replace(VIDEO, title=IMAGE.title, published=date(2019, 6, 1))
    assert ingest(engine, Listing("b", (namesake,)), now=clock).new == 1
    ids = sorted(p.id for p in papers_seen_since(engine, None))
    assert ids == [paper_id(IMAGE), f"{paper_id(IMAGE)}-2"]


def ingest_twice_at_once(url: str, listing: Listing, now: datetime) -> list[object]:
    """Two ingests of `listing`, each in its own thread with its own engine on `url`, started
    at the same moment; what each returned or raised."""
    engines = [make_engine(url) for _ in range(2)]
    outcomes: list[object] = [None, None]
    start = threading.Barrier(2)

    def ingester(n: int) -> None:
        start.wait()
        try:
            outcomes[n] = ingest(engines[n], listing, now=now)
        except Exception as exc:  # the outcome under test
            outcomes[n] = exc

    threads = [threading.Thread(target=ingester, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    return outcomes


def test_two_ingests_of_the_same_new_papers_at_once_both_succeed(
    database_url: str, clock: datetime
) -> None:
    """Two ingests racing on every shared listing both succeed, and each paper is stored
    once: one ingest finds it new, the other already known."""
    make_engine(database_url).dispose()  # the schema, created before the race
    for day, path in enumerate(sorted(LISTINGS.glob("*.txt"))):
        now = clock + timedelta(days=day)
        listing = read_listing(path, today=now.date())
        outcomes = ingest_twice_at_once(database_url, listing, now)
        assert all(isinstance(o, IngestResult) for o in outcomes), outcomes
        results = [o for o in outcomes if isinstance(o, IngestResult)]
        assert {r.new + r.known for r in results} == {len(listing.papers)}
        assert min(r.new for r in results) == 0
    engine = make_engine(database_url)
    stored = papers_seen_since(engine, None)
    engine.dispose()
    listings = [read_listing(p, today=clock.date()) for p in LISTINGS.glob("*.txt")]
    assert len(stored) == len({paper_id(p) for lst in listings for p in lst.papers})
