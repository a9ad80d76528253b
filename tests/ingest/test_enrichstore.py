"""Tests for which papers wait for an arXiv lookup and what a lookup's outcome writes."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Engine
from sqlmodel import Session

from digestbot.ingest.enrich import Choice
from digestbot.ingest.enrichstore import record, waiting, waiting_count
from digestbot.ingest.papers import ingest, papers_named
from digestbot.models import ListedPaper, Listing
from digestbot.store.tables import EnrichmentRow

PAGE = Listing(
    "saved-page.txt",
    (
        ListedPaper("Scaling Diffusion Transformers", "We scale diffusion transformers."),
        ListedPaper("Sparse Mixtures of Experts", "Routing tokens to experts."),
    ),
)
FOUND = ListedPaper(
    "Scaling Diffusion Transformers",
    "We scale diffusion transformers.",
    published=date(2025, 1, 3),
    authors=("Ada Lovelace", "Alan Turing"),
    arxiv_id="2501.00001",
    categories=("cs.CV", "cs.LG"),
)


def stored(engine: Engine, clock: datetime) -> dict[str, str]:
    """Ingest the page; its papers' ids by title."""
    ingest(engine, PAGE, now=clock)
    return {s.title: s.paper_id for s in waiting(engine, now=clock, retry_days=7)}


def test_papers_known_only_by_title_wait_for_a_lookup(engine: Engine, clock: datetime) -> None:
    """A saved page's papers wait; a paper with an arXiv id never does."""
    other = ListedPaper("Graph Neural Networks at Scale", "Graphs.", arxiv_id="2501.00002")
    ingest(engine, Listing("feed", (other,)), now=clock)
    ids = stored(engine, clock)
    assert set(ids) == {"Scaling Diffusion Transformers", "Sparse Mixtures of Experts"}
    assert waiting_count(engine, now=clock, retry_days=7) == 2


def test_an_adopted_record_gives_the_paper_its_id_authors_categories_and_links(
    engine: Engine, clock: datetime
) -> None:
    """The paper keeps its own id and first-seen time and gains the arXiv record."""
    ids = stored(engine, clock)
    pid = ids["Scaling Diffusion Transformers"]
    done = record(engine, [Choice(pid, FOUND)], now=clock)
    assert (done.adopted, done.elsewhere, done.not_found) == (1, 0, 0)
    (paper,) = papers_named(engine, "2501.00001")
    assert paper.id == pid
    assert paper.first_seen == clock
    assert paper.authors == ("Ada Lovelace", "Alan Turing")
    assert paper.author_count == 2
    assert paper.categories == ("cs.CV", "cs.LG")
    assert paper.published == date(2025, 1, 3)
    assert dict(paper.links)["abs"] == "https://arxiv.org/abs/2501.00001"
    assert dict(paper.links)["hf"] == "https://huggingface.co/papers/2501.00001"
    assert waiting_count(engine, now=clock, retry_days=7) == 1


def test_a_later_sighting_of_the_adopted_id_merges_into_the_same_paper(
    engine: Engine, clock: datetime
) -> None:
    """After adoption, an arXiv feed listing that id adds no second paper."""
    ids = stored(engine, clock)
    record(engine, [Choice(ids["Scaling Diffusion Transformers"], FOUND)], now=clock)
    result = ingest(engine, Listing("arxiv", (FOUND,)), now=clock + timedelta(hours=1))
    assert (result.new, result.known) == (0, 1)


def test_a_lookup_that_found_nothing_is_not_repeated_within_the_retry_window(
    engine: Engine, clock: datetime
) -> None:
    """Not found today: not asked again for 7 days, then asked again."""
    ids = stored(engine, clock)
    pid = ids["Sparse Mixtures of Experts"]
    record(engine, [Choice(pid, None, "no alike title")], now=clock)
    six_days = clock + timedelta(days=6)
    assert pid not in {s.paper_id for s in waiting(engine, now=six_days, retry_days=7)}
    eight_days = clock + timedelta(days=8)
    assert pid in {s.paper_id for s in waiting(engine, now=eight_days, retry_days=7)}


def test_an_id_another_paper_already_has_is_not_adopted_twice(
    engine: Engine, clock: datetime
) -> None:
    """Two rows never share an arXiv id: the lookup is noted as `elsewhere`."""
    ids = stored(engine, clock)
    clash = ListedPaper("Another Title Entirely", "x", arxiv_id="2501.00001")
    ingest(engine, Listing("feed", (clash,)), now=clock)
    pid = ids["Scaling Diffusion Transformers"]
    done = record(engine, [Choice(pid, FOUND)], now=clock)
    assert (done.adopted, done.elsewhere) == (0, 1)
    assert [p.id for p in papers_named(engine, "2501.00001")] == ["2501.00001"]
    with Session(engine) as session:
        row = session.get(EnrichmentRow, pid)
        assert row is not None
        assert (row.outcome, row.detail) == ("elsewhere", "stored as 2501.00001")


def test_a_paper_that_gained_an_id_meanwhile_is_left_alone(engine: Engine, clock: datetime) -> None:
    """An arXiv feed listed the paper while the lookup ran: its own id stands."""
    ids = stored(engine, clock)
    pid = ids["Scaling Diffusion Transformers"]
    meanwhile = ListedPaper(FOUND.title, FOUND.abstract, arxiv_id="2501.07777")
    ingest(engine, Listing("arxiv", (meanwhile,)), now=clock)
    done = record(engine, [Choice(pid, FOUND)], now=clock)
    assert done.adopted == 0
    assert [p.id for p in papers_named(engine, "2501.07777")] == [pid]
