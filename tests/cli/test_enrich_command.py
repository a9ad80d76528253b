"""Tests for `digestbot enrich` and the arXiv lookups `ingest` runs, against the stand-in."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest
from arxivapi import ArxivApi, load_corpus
from conftest import LISTING_000, free_port

from digestbot.store.engine import make_engine
from digestbot.store.lock import lookup_lock

Run = Callable[..., Any]


@pytest.fixture
def lookups_on(monkeypatch: pytest.MonkeyPatch, arxiv_api: ArxivApi) -> ArxivApi:
    """Lookups on, against the stand-in, with no pause between requests."""
    monkeypatch.setenv("DIGESTBOT_ENRICH", "true")
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_BASE_URL", arxiv_api.base_url)
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_DELAY", "0")
    monkeypatch.setenv("DIGESTBOT_HTTP_RETRIES", "0")
    return arxiv_api


def api_down(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_BASE_URL", f"http://127.0.0.1:{free_port()}")


def test_ingest_looks_a_saved_pages_papers_up_and_says_how_it_went(
    run: Run, lookups_on: ArxivApi
) -> None:
    """After the ingest line comes one line of lookups; status then shows the run."""
    result = run("ingest", str(LISTING_000))
    assert result.exit_code == 0, result.output
    assert re.search(
        r"arXiv lookups: 39 papers looked up in \d+ requests: 38 found, 1 not found "
        r"\(tried again in 7 days\); 0 waiting",
        result.stdout,
    ), result.stdout
    status = " ".join(run("status").stdout.split())
    assert re.search(
        r"arXiv lookups: 0 papers known only by title waiting; last run .*, 38 found", status
    )


def test_no_enrich_leaves_the_papers_waiting_for_the_enrich_command(
    run: Run, lookups_on: ArxivApi
) -> None:
    """--no-enrich asks the API nothing and says what waits; `enrich --limit` then takes
    the newest, `enrich` the rest."""
    skipped = run("ingest", "--no-enrich", str(LISTING_000))
    assert skipped.exit_code == 0
    assert "39 papers known only by title waiting for an arXiv lookup" in skipped.stdout
    assert lookups_on.requests == []
    some = run("enrich", "--limit", "3")
    assert some.exit_code == 0 and "3 papers looked up" in some.stdout
    assert "36 waiting" in some.stdout
    rest = run("enrich")
    assert rest.exit_code == 0 and "36 papers looked up" in rest.stdout


def test_a_down_api_warns_after_ingest_and_fails_enrich(
    run: Run, lookups_on: ArxivApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The ingest still exits 0 with one warning; `enrich` exits 1 with one error; status
    shows the failure and the papers still waiting."""
    api_down(monkeypatch)
    ingested = run("ingest", str(LISTING_000))
    assert ingested.exit_code == 0
    (warning,) = [line for line in ingested.stderr.splitlines() if "arXiv" in line]
    assert warning.startswith("Warning: arXiv lookups stopped: http://127.0.0.1:")
    assert warning.endswith("39 papers still waiting (for the next ingest or `digestbot enrich`)")
    assert "looked up" not in ingested.stdout
    failed = run("enrich")
    assert failed.exit_code == 1
    assert failed.stderr.startswith("Error: arXiv lookups stopped: http://127.0.0.1:")
    assert failed.stdout == ""
    status = " ".join(run("status").stdout.split())
    assert "arXiv lookups: 39 papers known only by title waiting" in status
    assert "failed: http://127.0.0.1:" in status


def test_enrich_refuses_while_another_process_looks_papers_up(
    run: Run, lookups_on: ArxivApi, tmp_path: Any
) -> None:
    """Two lookups at once would send arXiv two requests at a time: the second refuses."""
    assert run("ingest", "--no-enrich", str(LISTING_000)).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    with lookup_lock(engine) as mine:
        assert mine
        refused = run("enrich")
    engine.dispose()
    assert refused.exit_code == 1
    assert "Error: another digestbot process is looking papers up on arXiv" in refused.stderr
    assert lookups_on.requests == []


def test_with_lookups_off_ingest_asks_nothing_and_status_says_so(
    run: Run, arxiv_api: ArxivApi, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DIGESTBOT_ENRICH=false: no request, and status says lookups are off after ingests."""
    monkeypatch.setenv("DIGESTBOT_ARXIV_API_BASE_URL", arxiv_api.base_url)
    assert run("ingest", str(LISTING_000)).exit_code == 0
    assert arxiv_api.requests == []
    status = " ".join(run("status").stdout.split())
    assert "off after ingests (DIGESTBOT_ENRICH=false)" in status


def test_papers_show_tells_where_a_title_only_papers_lookup_stands(
    run: Run, lookups_on: ArxivApi
) -> None:
    """A paper arXiv does not have shows its search link and its lookup: waiting, then
    not found with the day it is tried again."""
    (title,) = [
        e["listing_title"]
        for e in load_corpus()
        if e["withhold"] and not e["decoy"] and e["listing"] == LISTING_000.name
    ]
    assert run("ingest", "--no-enrich", str(LISTING_000)).exit_code == 0
    listed = run("papers", "list", "--json", "--limit", "100").stdout
    (paper_id,) = [p["id"] for p in json.loads(listed) if p["title"] == title]
    before = " ".join(run("papers", "show", paper_id).stdout.split())
    assert "arXiv lookup: waiting" in before
    assert "search: https://arxiv.org/search/?query=" in before
    assert run("enrich").exit_code == 0
    after = " ".join(run("papers", "show", paper_id).stdout.split())
    assert re.search(r"arXiv lookup: not found on \d{4}-\d\d-\d\d \(.+\); tried again from", after)
