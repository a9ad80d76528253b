"""Ingest stage, enrich (network edge): look title-only papers up on the arXiv API.

arXiv's terms: one request at a time, a pause between requests, a User-Agent that names the
client (the shared HTTP client's). Titles go in batches of phrase searches OR-ed together;
a title the batch did not settle is asked once more alone with a looser search. Any failure
(after the usual retries, Retry-After honoured) ends the run: the papers not yet settled
stay waiting, and a blank or malformed answer never counts as "not found".
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from digestbot.errors import DigestbotError
from digestbot.ingest.enrich import (
    NOT_FOUND,
    Choice,
    Sought,
    choose,
    titles_query,
    words_query,
)
from digestbot.ingest.feeds import parse_feed
from digestbot.ingest.http import HttpPolicy, Sleep, fetch
from digestbot.ingest.textnorm import words
from digestbot.models import ListedPaper

BATCH = 10  # titles per request: arXiv's URLs stay short and one answer page holds them
_PER_TITLE = 5  # results asked for per title; a batch answer holds BATCH * _PER_TITLE


@dataclass
class Lookup:
    """How a run went: a choice for every paper it settled, and the error that ended it."""

    choices: list[Choice] = field(default_factory=list)
    requests: int = 0
    error: str | None = None


@dataclass(frozen=True)
class Api:
    """Where and how to ask: the API's base URL, the HTTP policy and the pause between
    requests (`sleep` waits, so tests and the daemon can stop it)."""

    client: httpx.AsyncClient
    base_url: str
    policy: HttpPolicy
    delay: float
    sleep: Sleep = asyncio.sleep


async def look_up(
    api: Api,
    sought: Sequence[Sought],
    *,
    on_choice: Callable[[Choice], None] | None = None,
) -> Lookup:
    """Settle as many of `sought` as the API lets us, in order; stop at the first failure."""
    run = Lookup()
    lookable = []
    for paper in sought:
        if len(words(paper.title)) < 2:
            _settle(run, Choice(paper.paper_id, None, "title too short to search"), on_choice)
        else:
            lookable.append(paper)
    try:
        for start in range(0, len(lookable), BATCH):
            group = lookable[start : start + BATCH]
            query = titles_query(paper.title for paper in group)
            found = await _ask(api, run, query, len(group) * _PER_TITLE)
            for paper in group:
                choice = choose(paper, found)
                # Only a title nothing resembled is worth a looser search.
                if choice.reason == NOT_FOUND:
                    alone = await _ask(api, run, words_query(paper.title), _PER_TITLE)
                    choice = choose(paper, alone)
                _settle(run, choice, on_choice)
    except DigestbotError as exc:
        run.error = str(exc)
    return run


def _settle(run: Lookup, choice: Choice, on_choice: Callable[[Choice], None] | None) -> None:
    run.choices.append(choice)
    if on_choice is not None:
        on_choice(choice)


async def _ask(api: Api, run: Lookup, query: str, results: int) -> tuple[ListedPaper, ...]:
    """One search, after the pause arXiv asks for when it is not the run's first."""
    if run.requests:
        await api.sleep(api.delay)
    run.requests += 1
    url = f"{api.base_url.rstrip('/')}/api/query"
    params = {"search_query": query, "start": "0", "max_results": str(results)}
    fetched = await fetch(api.client, url, policy=api.policy, params=params, sleep=api.sleep)
    return parse_feed(fetched.body, source=f"{url}?search_query={query}").listing.papers


async def fetch_ids(api: Api, ids: Sequence[str]) -> tuple[ListedPaper, ...]:
    """The arXiv records of `ids` (those arXiv has), BATCH * _PER_TITLE at a time by
    `id_list`, one request at a time with the pause between; a failure raises."""
    found: list[ListedPaper] = []
    url = f"{api.base_url.rstrip('/')}/api/query"
    size = BATCH * _PER_TITLE
    for start in range(0, len(ids), size):
        if start:
            await api.sleep(api.delay)
        chunk = ",".join(ids[start : start + size])
        params = {"id_list": chunk, "start": "0", "max_results": str(size)}
        fetched = await fetch(api.client, url, policy=api.policy, params=params, sleep=api.sleep)
        found += parse_feed(fetched.body, source=f"{url}?id_list={chunk}").listing.papers
    return tuple(p for p in found if p.arxiv_id)
