"""Tests for `papers list` and `papers show`: readable at 80 columns and piped, short ids
that `papers show` takes, a subscriber's matches ranked as their digest."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FEEDS, LISTING_000, LISTINGS
from helpers import ALICE_YAML, host_environment
from rich.cells import cell_len
from typer.testing import CliRunner, Result

from digestbot.cli import app

LISTING_001 = LISTINGS / "001_da432fa98501e883.txt"  # with LISTING_000, 90 papers
HF_DAY = FEEDS / "hf_daily_papers_2025-01-15.json"
BOX_DRAWING = range(0x2500, 0x2580)


@pytest.fixture(autouse=True)
def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command uses the SQLite file in tmp_path."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def piped(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m digestbot ARGS` in its own process at COLUMNS=80, its output piped."""
    env = host_environment()
    env.update(DIGESTBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'digestbot.db'}", COLUMNS="80")
    return subprocess.run(
        [sys.executable, "-m", "digestbot", *args],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )


def ingested(*paths: Path) -> None:
    for path in paths:
        assert run("ingest", str(path)).exit_code == 0


def test_papers_list_piped_at_80_columns_is_plain_lines_that_fit(tmp_path: Path) -> None:
    """Piped at COLUMNS=80: a header, 50 lines, `… 40 more`, none over 80 cells, no escapes
    and no box drawing."""
    ingested(LISTING_000, LISTING_001)
    shown = piped(tmp_path, "papers", "list")
    assert shown.returncode == 0, shown.stderr
    lines = shown.stdout.splitlines()
    assert lines[0].split() == ["id", "published", "upvotes", "title"]
    assert len(lines) == 1 + 50 + 1
    assert lines[-1] == "… 40 more; use --limit"
    assert all(cell_len(line) <= 80 for line in lines), max(lines, key=cell_len)
    assert "\x1b" not in shown.stdout
    assert not any(ord(c) in BOX_DRAWING for c in shown.stdout)
    assert any(line.endswith("…") and cell_len(line) == 80 for line in lines[1:-1])


def test_papers_list_limit_cuts_and_says_how_many_more() -> None:
    """--limit 3 shows three papers and how many it left out; a limit over the count
    shows every paper and no such line."""
    ingested(LISTING_000)
    lines = run("papers", "list", "--limit", "3").stdout.splitlines()
    assert len(lines) == 1 + 3 + 1 and lines[-1] == "… 36 more; use --limit"
    everything = run("papers", "list", "--limit", "100").stdout.splitlines()
    assert len(everything) == 1 + 39 and "more; use --limit" not in everything[-1]


def test_papers_show_takes_every_short_id_papers_list_prints() -> None:
    """Each id in the first column of `papers list` opens its paper with `papers show`."""
    ingested(LISTING_000, HF_DAY)
    listed = json.loads(run("papers", "list", "--json").stdout)
    lines = run("papers", "list", "--limit", "100").stdout.splitlines()[1:]
    assert {line.split()[0] for line in lines} == {p["short_id"] for p in listed}
    assert any(p["arxiv_id"] == p["short_id"] for p in listed)  # the HF papers
    for paper in listed:
        shown = run("papers", "show", paper["short_id"])
        assert shown.exit_code == 0, shown.stderr
        assert f"id:           {paper['id']}" in shown.stdout


def test_papers_show_prints_one_paper_whole() -> None:
    """Title, every author, dates, upvotes, comments, links, sources and the whole abstract."""
    ingested(HF_DAY)
    (paper,) = [
        p for p in json.loads(run("papers", "list", "--json").stdout) if p["id"] == "2501.08292"
    ]
    shown = run("papers", "show", "2501.08292").stdout
    lines = shown.splitlines()
    assert lines[0] == paper["title"]
    assert "authors:      " + ", ".join(paper["authors"]) in shown
    assert "published:    2025-01-14" in shown and "first seen:   " in shown
    assert "upvotes:      12" in shown and "comments:     1" in shown
    assert f"links:        hf: {paper['links']['hf']}" in shown
    assert all(url in shown for url in paper["links"].values())
    assert f"sources:      {paper['sources'][0]}" in shown
    abstract = lines[lines.index("", 2) + 1 :]
    assert " ".join(abstract).split() == paper["abstract"].split()
    assert all(len(line) <= 80 for line in abstract)


def test_papers_show_of_an_unknown_id_is_one_error_line_with_a_hint() -> None:
    """An id no paper has: `Error: no paper ID (… papers list …)`, exit 1."""
    ingested(HF_DAY)
    result = run("papers", "show", "9999.99999")
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: no paper 9999.99999 (") and "papers list" in line


def test_papers_list_json_includes_the_abstract() -> None:
    """Each JSON object carries its paper's whole abstract under `abstract`."""
    ingested(HF_DAY)
    listed = json.loads(run("papers", "list", "--json").stdout)
    halogen = next(p for p in listed if p["id"] == "2501.08292")
    assert halogen["abstract"].startswith("Despite producing fluent, high-quality text")
    assert halogen["abstract"].endswith("and by fabrication (Type C errors).")


def test_papers_list_match_shows_what_the_digest_would_send_in_its_order(tmp_path: Path) -> None:
    """--match EMAIL lists the subscriber's matches best first, as `send-now --dry-run`
    ranks them, each with the rule and terms that matched."""
    ingested(LISTING_000, LISTING_001)
    capped = ALICE_YAML.replace("max_papers: 50", "max_papers: 25")
    (tmp_path / "s.yaml").write_text(capped, encoding="utf-8")
    run("subscriptions", "sync", str(tmp_path / "s.yaml"))
    (plan,) = json.loads(run("send-now", "--dry-run", "--json").stdout)
    matched = json.loads(run("papers", "list", "--match", "alice@example.org", "--json").stdout)
    assert len(plan["papers"]) == 25 and len(matched) > 25  # max_papers cuts the digest
    assert [p["id"] for p in matched[:25]] == [p["id"] for p in plan["papers"]]
    assert all(p["match"]["rules"] == ["Transformers"] for p in matched)
    lines = run("papers", "list", "--match", "alice@example.org", "--limit", "2").stdout
    assert lines.splitlines()[2].split() == ["matched", "Transformers", "(transformer)"]


def test_papers_list_match_of_an_unknown_subscriber_is_one_error_line() -> None:
    """--match with an address no active subscriber has: one Error line, exit 1."""
    ingested(HF_DAY)
    result = run("papers", "list", "--match", "bob@example.org")
    assert result.exit_code == 1 and result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: no subscriber bob@example.org (")
