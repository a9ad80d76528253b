"""Tests for category rules end to end: synced from the file, applied to ingested papers."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import FEEDS, LISTING_000

SUBSCRIPTIONS = """\
topics:
  language:
    categories: [cs.CL]
subscribers:
  - email: ir@example.org
    rules:
      - name: Retrieval or learning
        categories: [cs.IR, cs.LG]
  - email: all-cs@example.org
    rules:
      - categories: [cs.*]
  - email: nlp-transformers@example.org
    rules:
      - name: Transformers in NLP
        topics: [language]
        any: [transformer, language]
"""


def test_category_rules_select_the_papers_of_their_categories_only(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Over an arXiv feed and a saved page, category rules pick the feed's papers by category
    and never the page's papers, which have no categories."""
    assert run("ingest", str(FEEDS / "arxiv_rss_cs.CL.xml")).exit_code == 0
    assert run("ingest", str(LISTING_000)).exit_code == 0
    path = tmp_path / "subscriptions.yaml"
    path.write_text(SUBSCRIPTIONS, encoding="utf-8")
    assert run("subscriptions", "sync", str(path)).exit_code == 0
    result = run("send-now", "--dry-run", "--json")
    assert result.exit_code == 0
    plans = {plan["email"]: plan["papers"] for plan in json.loads(result.stdout)}
    ir = {p["title"].split(":")[0][:20]: p["matched"] for p in plans["ir@example.org"]}
    assert ir == {"Eliciting In-context": ["cs.IR"], "Gradient-Free Prompt": ["cs.LG"]}
    assert len(plans["all-cs@example.org"]) == 4
    nlp = plans["nlp-transformers@example.org"]
    # Many of the saved page's papers mention transformers; only the feed's cs.CL ones count.
    assert nlp and all("cs.CL" in p["matched"] for p in nlp)
    assert all(any(t in p["matched"] for t in ("transformer", "language")) for p in nlp)


def test_a_bad_category_fails_sync_with_its_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """An unknown archive stops the sync with a located error on stderr and exit 1."""
    path = tmp_path / "subscriptions.yaml"
    path.write_text(SUBSCRIPTIONS.replace("cs.IR", "cz.IR"), encoding="utf-8")
    result = run("subscriptions", "sync", str(path))
    assert result.exit_code == 1
    assert f"{path}:8:22: subscribers[0].rules[0].categories[0]: unknown arXiv archive" in (
        result.stderr
    )
