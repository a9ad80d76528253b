"""Tests for looking title-only papers up on the arXiv API, against the loopback stand-in."""

from __future__ import annotations

import asyncio
from datetime import datetime
from pathlib import Path

import pytest
from arxivapi import ArxivApi, load_corpus
from conftest import LISTINGS
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot.ingest.enrichstore import waiting_count
from digestbot.ingest.load import Enriched, enrich_waiting, ingest_path
from digestbot.ingest.papers import papers_seen_since
from digestbot.settings import Settings
from digestbot.store.tables import EnrichmentRow

PAGE = LISTINGS / "000_71ee6fcf9145397c.txt"


def at(settings: Settings, api: ArxivApi, **extra: object) -> Settings:
    """`settings` pointed at the stand-in, with no pause between requests unless given."""
    values: dict[str, object] = {
        "arxiv_api_base_url": api.base_url,
        "arxiv_api_delay": 0.0,
        "http_timeout": 2.0,
        "http_retries": 1,
        "http_backoff": 0.0,
        "enrich": True,
    }
    values.update(extra)
    return settings.model_copy(update=values)


def enrich(engine: Engine, settings: Settings, now: datetime, **kwargs: object) -> Enriched:
    return asyncio.run(enrich_waiting(engine, settings, now=now, **kwargs))  # type: ignore[arg-type]


def truth() -> dict[str, str]:
    """Each listing paper's title as its page prints it, and its true arXiv id."""
    return {e["listing_title"]: e["id"] for e in load_corpus() if not e["decoy"]}


def ingest_pages(engine: Engine, now: datetime, *pages: Path) -> None:
    for page in pages:
        ingest_path(engine, page, now=now)


def test_a_saved_page_gains_the_arxiv_records_of_at_least_95_percent_of_its_papers(
    engine: Engine, settings: Settings, clock: datetime, arxiv_api: ArxivApi
) -> None:
    """With the API knowing every paper (decoys beside them), every paper gets its own id
    and authors, and none gets a wrong one."""
    full = ArxivApi(withhold=False).start()
    try:
        ingest_pages(engine, clock, *sorted(LISTINGS.glob("*.txt")))
        done = enrich(engine, at(settings, full), clock)
    finally:
        full.stop()
    papers = papers_seen_since(engine, None)
    expected = truth()
    right = [p for p in papers if p.arxiv_id and p.arxiv_id == expected.get(p.title)]
    wrong = [p for p in papers if p.arxiv_id and p.arxiv_id != expected.get(p.title)]
    assert wrong == []
    assert len(right) / len(papers) >= 0.95
    assert all(p.authors and p.categories and dict(p.links)["abs"] for p in right)
    assert done.error is None
    assert done.requests < len(papers) / 5  # batched: far fewer requests than papers


def test_withheld_papers_and_their_near_misses_are_not_adopted(
    engine: Engine, settings: Settings, clock: datetime, arxiv_api: ArxivApi
) -> None:
    """Papers the API lacks stay title-only, even when a near-miss title is there."""
    ingest_pages(engine, clock, *sorted(LISTINGS.glob("*.txt")))
    done = enrich(engine, at(settings, arxiv_api), clock)
    withheld = {e["listing_title"] for e in load_corpus() if e["withhold"]}
    papers = {p.title: p for p in papers_seen_since(engine, None)}
    assert withheld and all(papers[title].arxiv_id is None for title in withheld)
    assert done.recorded.not_found >= len(withheld)
    wrong = [p for p in papers.values() if p.arxiv_id and p.arxiv_id != truth().get(p.title)]
    assert wrong == []


def test_requests_come_one_at_a_time_with_the_delay_between_them(
    engine: Engine, settings: Settings, clock: datetime, arxiv_api: ArxivApi
) -> None:
    """On the server's own clock, no two requests overlap and each follows the last answer
    by at least DIGESTBOT_ARXIV_API_DELAY."""
    ingest_pages(engine, clock, PAGE)
    enrich(engine, at(settings, arxiv_api, arxiv_api_delay=0.3), clock)
    assert len(arxiv_api.requests) >= 4
    assert arxiv_api.max_in_flight == 1
    assert min(arxiv_api.idle_gaps()) >= 0.29
    agents = {r.headers.get("user-agent", "") for r in arxiv_api.requests}
    assert all(agent.startswith("digestbot/") for agent in agents)


def test_a_503_with_retry_after_is_waited_out_and_the_run_goes_on(
    engine: Engine, settings: Settings, clock: datetime, arxiv_api: ArxivApi
) -> None:
    """The retry comes no sooner than Retry-After says, and the papers are found."""
    ingest_pages(engine, clock, PAGE)
    arxiv_api.fail(1, status=503, retry_after="1")
    done = enrich(engine, at(settings, arxiv_api), clock)
    first, second = arxiv_api.requests[:2]
    assert (first.status, second.status) == (503, 200)
    assert second.arrived - first.finished >= 0.95
    assert done.error is None
    assert done.recorded.adopted >= 30


@pytest.mark.parametrize("fault", ["slow", "malformed", "blank", "down"])
def test_a_failing_api_leaves_every_unsettled_paper_waiting(
    engine: Engine, settings: Settings, clock: datetime, arxiv_api: ArxivApi, fault: str
) -> None:
    """A timeout, a cut-off or empty answer, or a 503 that persists stops the run; the
    papers it did not settle are not marked "not found" and wait for the next run."""
    ingest_pages(engine, clock, PAGE)
    before = waiting_count(engine, now=clock, retry_days=7)
    if fault == "slow":
        arxiv_api.slow(3.0)
    elif fault == "malformed":
        arxiv_api.malformed()
    elif fault == "blank":
        arxiv_api.blank()
    else:
        arxiv_api.fail(5, status=503, retry_after="0")
    done = enrich(engine, at(settings, arxiv_api, http_timeout=1.0, http_retries=0), clock)
    assert done.error
    assert done.tried == 0
    assert waiting_count(engine, now=clock, retry_days=7) == before
    with Session(engine) as session:
        assert session.exec(select(EnrichmentRow)).all() == []


def test_the_limit_looks_up_only_the_newest_papers(
    engine: Engine, settings: Settings, clock: datetime, arxiv_api: ArxivApi
) -> None:
    """--limit N settles N papers and leaves the rest waiting."""
    ingest_pages(engine, clock, PAGE)
    done = enrich(engine, at(settings, arxiv_api), clock, limit=5)
    assert done.tried == 5
    assert done.waiting == 39 - 5
