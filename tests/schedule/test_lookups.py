"""Tests for the daemon's arXiv lookups after an ingest: a failing API is given a pause."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta

from arxivapi import ArxivApi
from conftest import LISTING_000
from sqlalchemy import Engine

from digestbot.ingest.load import ingest_path
from digestbot.schedule.lookups import look_up_waiting, pause_after
from digestbot.settings import Settings


def test_the_pause_after_failures_doubles_up_to_six_hours() -> None:
    """5 minutes after one failed run, 10 after two, never more than 6 hours."""
    assert [pause_after(n) for n in (1, 2, 3)] == [timedelta(minutes=m) for m in (5, 10, 20)]
    assert pause_after(40) == timedelta(hours=6)


async def test_after_a_failed_run_the_next_waits_out_its_pause(
    settings: Settings, engine: Engine, clock: datetime, arxiv_api: ArxivApi
) -> None:
    """Ingests inside the pause ask the API nothing; the first after it asks again, and
    once the API answers, the papers are found."""
    ingest_path(engine, LISTING_000, now=clock)
    arxiv_api.fail(2, status=503, retry_after=None)
    on = settings.model_copy(
        update={
            "enrich": True,
            "arxiv_api_base_url": arxiv_api.base_url,
            "arxiv_api_delay": 0.0,
            "http_retries": 0,
        }
    )
    halt = asyncio.Event()

    async def at(minutes: int) -> int:
        moment = clock + timedelta(minutes=minutes)
        return await look_up_waiting(engine, on, now=moment, halt=halt)

    assert await at(0) == 0 and len(arxiv_api.requests) == 1
    assert await at(4) == 0 and len(arxiv_api.requests) == 1
    assert await at(6) == 0 and len(arxiv_api.requests) == 2
    assert await at(15) == 0 and len(arxiv_api.requests) == 2
    assert await at(17) >= 30
