"""Sample digests for the rendering tests and the render benchmark, built from the saved
listings in tests/fixtures (real Daily Papers pages and Hugging Face JSON)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from digestbot.ingest import read_listing
from digestbot.ingest.papers import paper_id
from digestbot.models import Digest, Paper, Rule, Subscriber
from digestbot.rules.digests import build_digest

FIXTURES = Path(__file__).parent / "fixtures"
SOURCES = (
    *sorted((FIXTURES / "feeds").glob("hf_daily_papers_*.json")),
    *sorted((FIXTURES / "listings").glob("*.txt")),
)

ATTENTION = Rule(
    "efficient-attention",
    any=("linear attention", "sparse attention", "lightning attention", "flash*"),
)
SAMPLE_SUBSCRIBER = Subscriber(
    7,
    "ada@example.org",
    "Ada",
    (
        Rule("Efficient attention", topics=(ATTENTION,)),
        Rule("LLMs", any=("LLM", "hallucination*", "Schrödinger")),
        Rule("Quantization", any=("quantiz*", "low-bit")),
        Rule("Diffusion transformers", all=("diffusion", "transformer")),
        Rule("Mixture of experts", any=("mixture of experts", "MoE")),
    ),
    max_papers=25,
)


def fixture_papers(now: datetime) -> list[Paper]:
    """Every paper of the saved listings, first seen an hour before `now`, once each."""
    found: dict[str, Paper] = {}
    for path in SOURCES:
        for listed in read_listing(path, today=now.date(), year=2025).papers:
            pid = paper_id(listed)
            found.setdefault(
                pid,
                Paper(
                    id=pid,
                    title=listed.title,
                    abstract=listed.abstract,
                    first_seen=now - timedelta(hours=1),
                    published=listed.published,
                    upvotes=listed.upvotes,
                    author_count=listed.author_count,
                    organisation=listed.organisation,
                    authors=listed.authors,
                    arxiv_id=listed.arxiv_id,
                    categories=listed.categories,
                    links=listed.links,
                    comments=listed.comments,
                ),
            )
    return list(found.values())


def fixture_digest(now: datetime, subscriber: Subscriber = SAMPLE_SUBSCRIBER) -> Digest:
    """The subscriber's digest over the saved listings, as `plan_digests` would build it."""
    return build_digest(
        subscriber,
        fixture_papers(now),
        since=now - timedelta(days=1),
        already_sent=(),
        now=now,
        period_key=f"manual:{now.isoformat()}",
    )
