"""Benchmark: arXiv lookups of the four saved listings' papers, against the loopback stand-in.

Prints, per round and as medians: the share of papers that gained their arXiv record (and
any wrong one), the requests made, the lookups' wall time, and the ingest's own wall time
with lookups off, with them on, and with the API down, so it shows that the ingest is not
slowed: its papers are stored before any lookup starts.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from arxivapi import ArxivApi, load_corpus  # noqa: E402

from digestbot.ingest.load import Enriched, enrich_waiting, ingest_path  # noqa: E402
from digestbot.ingest.papers import papers_seen_since  # noqa: E402
from digestbot.settings import Settings, given_settings  # noqa: E402
from digestbot.store.engine import make_engine  # noqa: E402
from digestbot.store.migrate import ensure_current  # noqa: E402

LISTINGS = sorted((ROOT / "tests" / "fixtures" / "listings").glob("*.txt"))
NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def closed_port() -> int:
    """A loopback port nothing listens on: the API is down."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def timed(work: Callable[[], object]) -> tuple[float, object]:
    start = time.perf_counter()
    result = work()
    return time.perf_counter() - start, result


def one_run(base_url: str, enrich: bool) -> tuple[float, float, Enriched | None, float]:
    """Ingest the four listings into a new database, then (if `enrich`) look them up:
    (ingest seconds, lookup seconds, the lookup's result, share with their true id)."""
    folder = Path(tempfile.mkdtemp(prefix="bench-enrich-"))
    settings: Settings = given_settings(
        database_url=f"sqlite:///{folder / 'digestbot.db'}",
        arxiv_api_base_url=base_url,
        arxiv_api_delay=0.0,
        http_retries=0,
        http_timeout=2.0,
        enrich=enrich,
    )
    engine = make_engine(settings.database_url)
    ensure_current(engine)
    ingest_s, _ = timed(lambda: [ingest_path(engine, p, now=NOW) for p in LISTINGS])
    if not enrich:
        return ingest_s, 0.0, None, 0.0
    lookup_s, done = timed(lambda: asyncio.run(enrich_waiting(engine, settings, now=NOW)))
    truth = {e["listing_title"]: e["id"] for e in load_corpus() if not e["decoy"]}
    papers = papers_seen_since(engine, None)
    wrong = [p for p in papers if p.arxiv_id and p.arxiv_id != truth.get(p.title)]
    if wrong:
        print(f"  WRONG ids adopted: {len(wrong)}")
    right = sum(1 for p in papers if p.arxiv_id and p.arxiv_id == truth.get(p.title))
    engine.dispose()
    assert isinstance(done, Enriched)
    return ingest_s, lookup_s, done, right / len(papers)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    off, on, down, lookups, shares, requests = [], [], [], [], [], []
    with ArxivApi() as api:
        for number in range(1, args.rounds + 1):
            plain, _, _, _ = one_run(api.base_url, enrich=False)
            ingest_s, lookup_s, done, share = one_run(api.base_url, enrich=True)
            dead, dead_lookup, failed, _ = one_run(f"http://127.0.0.1:{closed_port()}", True)
            assert done is not None and failed is not None
            off.append(plain)
            on.append(ingest_s)
            down.append(dead)
            lookups.append(lookup_s)
            shares.append(share)
            requests.append(done.requests)
            print(
                f"round {number}: ingest {plain:.2f} s (lookups off), {ingest_s:.2f} s (on), "
                f"{dead:.2f} s (API down; its lookups failed in {dead_lookup:.2f} s: "
                f"{failed.error}); lookups {lookup_s:.2f} s in {done.requests} requests, "
                f"{done.recorded.adopted} found, {done.recorded.not_found} not found, "
                f"{share:.1%} of papers with their true id"
            )
    median = statistics.median
    delay = Settings.model_fields["arxiv_api_delay"].default
    paced = median(lookups) + delay * (median(requests) - 1)
    print(
        f"\nmedians over {args.rounds} rounds, {len(LISTINGS)} listings:\n"
        f"  share enriched with the true id: {median(shares):.1%}\n"
        f"  ingest alone: {median(off):.2f} s; with lookups on: {median(on):.2f} s "
        f"(ratio {median(on) / median(off):.2f}); with the API down: {median(down):.2f} s "
        f"(ratio {median(down) / median(off):.2f})\n"
        f"  lookups: {median(lookups):.2f} s for {median(requests):g} requests with no pause; "
        f"at arXiv's {delay:g} s between requests: {paced:.0f} s"
    )


if __name__ == "__main__":
    main()
