"""Ingest stage, network edge: fetch a configured source (HF, arXiv RSS, arXiv API, any feed)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from typing import Literal

import httpx

from digestbot.errors import ListingError
from digestbot.ingest.detect import parse_document
from digestbot.ingest.feeds import parse_feed
from digestbot.ingest.http import HttpPolicy, OnRetry, Sleep, Validators, fetch
from digestbot.models import ListedPaper, Listing

SourceKind = Literal["hf", "arxiv", "arxiv-query", "feed", "folder"]


@dataclass(frozen=True)
class Endpoints:
    """Base URLs, settings so that tests and mirrors can stand in for the real services."""

    hf: str = "https://huggingface.co"
    arxiv_rss: str = "https://rss.arxiv.org"
    arxiv_api: str = "https://export.arxiv.org"


@dataclass(frozen=True)
class SourceSpec:
    """One source to ingest: its kind and what it needs (categories, query, URL or path)."""

    kind: SourceKind
    categories: tuple[str, ...] = ()
    query: str | None = None
    url: str | None = None
    include_replacements: bool = False
    max_results: int = 200
    path: str | None = None  # a folder source's absolute folder or glob

    @property
    def name(self) -> str:
        """A short stable name, used in messages and the status of each source."""
        if self.kind == "arxiv":
            return f"arxiv:{'+'.join(self.categories)}"
        if self.kind == "arxiv-query":
            return f"arxiv-query:{self.search_query()}"
        if self.kind == "feed":
            return f"feed:{self.url}"
        if self.kind == "folder":
            return f"folder:{self.path}"
        return "hf"

    def search_query(self) -> str:
        """The arXiv API search_query: the query, or the categories OR-ed together."""
        if self.query:
            return self.query
        return " OR ".join(f"cat:{c}" for c in self.categories)


@dataclass(frozen=True)
class FetchedListing:
    """A fetched document's papers (None when unchanged since last time) and its validators."""

    url: str
    listing: Listing | None
    validators: Validators | None


async def fetch_source(
    spec: SourceSpec,
    *,
    client: httpx.AsyncClient,
    endpoints: Endpoints,
    policy: HttpPolicy,
    day: date,
    known: Callable[[str], Validators | None],
    page_delay: float = 3.0,
    sleep: Sleep = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> FetchedListing:
    """Fetch and parse `spec`; `known(url)` gives stored validators for conditional requests;
    `on_retry` is told of each retry before its wait."""
    if spec.kind == "arxiv-query":
        return await _fetch_query(spec, client, endpoints, policy, page_delay, sleep, on_retry)
    url = _url(spec, endpoints, day)
    fetched = await fetch(
        client, url, policy=policy, validators=known(url), sleep=sleep, on_retry=on_retry
    )
    if fetched.not_modified:
        return FetchedListing(url, None, fetched.validators)
    listing = parse_document(
        fetched.body, source=url, today=day, include_replacements=spec.include_replacements
    )
    return FetchedListing(url, listing, fetched.validators)


def _url(spec: SourceSpec, endpoints: Endpoints, day: date) -> str:
    if spec.kind == "hf":
        return f"{endpoints.hf.rstrip('/')}/api/daily_papers?date={day.isoformat()}"
    if spec.kind == "arxiv":
        if not spec.categories:
            raise ListingError("an arxiv source needs at least one category", "e.g. cs.CL")
        return f"{endpoints.arxiv_rss.rstrip('/')}/rss/{'+'.join(spec.categories)}"
    if spec.kind == "folder":
        raise ListingError(f"{spec.name}: a folder is read, not fetched", "use ingest.folder")
    if not spec.url:
        raise ListingError("a feed source needs a url", "give the feed's URL")
    return spec.url


async def _fetch_query(
    spec: SourceSpec,
    client: httpx.AsyncClient,
    endpoints: Endpoints,
    policy: HttpPolicy,
    page_delay: float,
    sleep: Sleep,
    on_retry: OnRetry | None,
) -> FetchedListing:
    """Follow the arXiv API's paging until every result (up to max_results) is in.

    All pages form one document: a failure on any page ingests none of them.
    """
    base = f"{endpoints.arxiv_api.rstrip('/')}/api/query"
    query = spec.search_query()
    if not query:
        raise ListingError("an arxiv-query source needs a query or categories", "e.g. cat:cs.CL")
    papers: list[ListedPaper] = []
    skipped: list[str] = []
    start = 0
    while start < spec.max_results:
        params = {
            "search_query": query,
            "start": str(start),
            "max_results": str(min(100, spec.max_results - start)),
            "sortBy": "submittedDate",
            "sortOrder": "descending",
        }
        fetched = await fetch(
            client, base, policy=policy, params=params, sleep=sleep, on_retry=on_retry
        )
        page = parse_feed(fetched.body, source=f"{base}?search_query={query}&start={start}")
        papers.extend(page.listing.papers)
        skipped.extend(page.listing.skipped)
        received = len(page.listing.papers) + len(page.listing.skipped)
        start += received
        if received == 0 or page.total is None or start >= page.total:
            break
        await sleep(page_delay)  # arXiv asks for a pause between API calls
    source = f"{base}?search_query={query}"
    return FetchedListing(source, Listing(source, tuple(papers), tuple(skipped)), None)
