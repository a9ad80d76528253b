"""Tests for ingesting sources over loopback HTTP: dedupe across sources and days, failures."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from conftest import FEEDS, HttpServer, Reply, Sleeps, free_port
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot.errors import ListingError, SourceError
from digestbot.ingest.fetch import SourceSpec
from digestbot.ingest.load import ingest_source
from digestbot.ingest.papers import papers_seen_since
from digestbot.models import Paper
from digestbot.settings import Settings
from digestbot.store.tables import FeedStateRow

HF = SourceSpec("hf")
RSS = SourceSpec("arxiv", categories=("cs.CL",))


def body(name: str) -> bytes:
    return (FEEDS / name).read_bytes()


def stored(engine: Engine) -> dict[str, Paper]:
    return {p.arxiv_id or p.title: p for p in papers_seen_since(engine, None)}


async def ingest(engine: Engine, settings: Settings, spec: SourceSpec, now: datetime, **kw):  # type: ignore[no-untyped-def]
    return await ingest_source(engine, settings, spec, now=now, sleep=Sleeps(), **kw)


async def test_hf_is_fetched_for_the_given_day(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """The daily_papers API is asked for the day, and its papers are stored."""
    http_server.route("/api/daily_papers", Reply(body=body("hf_daily_papers_2025-01-15.json")))
    result = await ingest(engine, web_settings, HF, clock, day=date(2025, 1, 15))
    assert (result.new, result.known, result.skipped) == (6, 0, ())
    assert http_server.requests[0][0] == "/api/daily_papers?date=2025-01-15"


async def test_papers_from_several_sources_and_days_are_stored_once_with_merged_fields(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """HF, arXiv RSS, a blog and a second HF day give each paper once, fields merged."""
    http_server.route(
        "/api/daily_papers",
        Reply(body=body("hf_daily_papers_2025-01-15.json")),
        Reply(body=body("hf_daily_papers_2025-01-16.json")),
    )
    http_server.route("/rss/cs.CL", Reply(body=body("arxiv_rss_cs.CL.xml")))
    blog = http_server.route("/blog/feed.xml", Reply(body=body("generic_atom_blog.xml")))
    day2 = clock + timedelta(days=1)
    results = [
        await ingest(engine, web_settings, HF, clock, day=date(2025, 1, 15)),
        await ingest(engine, web_settings, RSS, clock),
        await ingest(engine, web_settings, SourceSpec("feed", url=blog), clock),
        await ingest(engine, web_settings, HF, day2, day=date(2025, 1, 16)),
    ]
    assert [(r.new, r.known) for r in results] == [(6, 0), (3, 1), (2, 1), (3, 1)]
    papers = stored(engine)
    assert len(papers) == 14
    halogen = papers["2501.08292"]
    assert halogen.upvotes == 12 and halogen.categories == ("cs.CL", "cs.AI")
    assert halogen.link("hf") and halogen.link("code")
    assert len(halogen.sources) == 2
    minimax = papers["2501.08313"]
    assert (minimax.upvotes, minimax.comments, minimax.first_seen) == (298, 6, clock)
    copilot = papers["2501.08187"]
    assert blog in copilot.sources
    assert copilot.link("hf") == "https://huggingface.co/papers/2501.08187"


async def test_a_title_only_paper_gains_its_arxiv_id_when_it_turns_up_later(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """Blog first, then HF: the same paper by title is merged and learns its arXiv id."""
    blog = http_server.route("/blog/feed.xml", Reply(body=body("generic_atom_blog.xml")))
    http_server.route("/api/daily_papers", Reply(body=body("hf_daily_papers_2025-01-15.json")))
    await ingest(engine, web_settings, SourceSpec("feed", url=blog), clock)
    result = await ingest(engine, web_settings, HF, clock + timedelta(hours=1))
    assert (result.new, result.known) == (5, 1)
    copilot = stored(engine)["2501.08187"]
    assert copilot.id.startswith("t-")  # the id it was first stored under stays stable
    assert copilot.first_seen == clock


async def test_the_arxiv_api_is_followed_across_pages(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """Two pages of results are fetched in turn and stored as one document."""
    http_server.route(
        "/api/query",
        Reply(body=body("arxiv_api_page1.xml")),
        Reply(body=body("arxiv_api_page2.xml")),
    )
    spec = SourceSpec("arxiv-query", query="cat:cs.CL AND abs:speculative")
    result = await ingest(engine, web_settings, spec, clock)
    assert result.new == 5
    starts = [target.split("start=")[1].split("&")[0] for target, _ in http_server.requests]
    assert starts == ["0", "3"]


async def test_an_unchanged_feed_costs_nothing_the_second_time(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """The stored ETag makes the second poll a 304: nothing parsed, nothing written."""
    http_server.route(
        "/rss/cs.CL", Reply(body=body("arxiv_rss_cs.CL.xml"), headers={"ETag": '"a1"'})
    )
    await ingest(engine, web_settings, RSS, clock)
    again = await ingest(engine, web_settings, RSS, clock + timedelta(hours=1))
    assert again.not_modified and again.new == again.known == 0
    assert http_server.requests[1][1]["if-none-match"] == '"a1"'


async def test_429_with_retry_after_and_500_then_200_still_ingest(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """Transient refusals are waited out; the document is ingested once it comes."""
    http_server.route(
        "/api/daily_papers",
        Reply(429, headers={"Retry-After": "2"}),
        Reply(500),
        Reply(body=body("hf_daily_papers_2025-01-15.json")),
    )
    sleeps = Sleeps()
    result = await ingest_source(engine, web_settings, HF, now=clock, sleep=sleeps)
    assert result.new == 6
    assert sleeps.waits[0] == 2.0 and len(sleeps.waits) == 2


@pytest.mark.parametrize(
    ("reply", "error", "message"),
    [
        (Reply(body=body("invalid.json")), ListingError, "not valid JSON"),
        (Reply(body=body("invalid.xml")), ListingError, "not a well-formed feed"),
        (Reply(body=b"[{", truncate=True), SourceError, "/api/daily_papers"),
        (Reply(body=b"[]", delay=3.0), SourceError, "timed out"),
        (Reply(503), SourceError, "HTTP 503"),
    ],
    ids=["invalid-json", "invalid-xml", "truncated", "slow", "503"],
)
async def test_a_failed_fetch_writes_nothing(  # type: ignore[no-untyped-def]
    engine: Engine,
    web_settings: Settings,
    http_server: HttpServer,
    clock: datetime,
    reply,
    error,
    message,
) -> None:
    """A bad document or a network failure is one error and leaves the database as it was."""
    http_server.route("/api/daily_papers", reply)
    fast = web_settings.model_copy(update={"http_timeout": 0.5, "http_retries": 1})
    with pytest.raises(error, match=message):
        await ingest(engine, fast, HF, clock)
    assert papers_seen_since(engine, None) == []
    with Session(engine) as session:
        assert session.exec(select(FeedStateRow)).all() == []


async def test_an_unreachable_server_names_the_url(
    engine: Engine, web_settings: Settings, clock: datetime
) -> None:
    """Connection refused is a SourceError with the URL."""
    dead = web_settings.model_copy(update={"hf_base_url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(SourceError, match=r"http://127\.0\.0\.1:\d+/api/daily_papers"):
        await ingest(engine, dead, HF, clock)


async def test_malformed_items_are_skipped_and_the_rest_ingested(
    engine: Engine, web_settings: Settings, http_server: HttpServer, clock: datetime
) -> None:
    """One bad item is a warning with its position; the good ones are stored."""
    http_server.route(
        "/api/daily_papers",
        Reply(
            body=b'[{"paper": {"title": "no id"}}, {"paper": {"id": "2501.00002", "title": "OK"}}]'
        ),
    )
    result = await ingest(engine, web_settings, HF, clock)
    assert result.new == 1
    (warning,) = result.skipped
    assert warning.endswith("item 1: missing 'id'")
