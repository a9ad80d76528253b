"""Tests for the command line given hostile input: oversized documents, deep JSON, terminal
escapes in titles, and two ingests at once; each is one `Error: …` line or a clean output."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import HttpServer, Reply
from sqlmodel import Session
from typer.testing import CliRunner, Result

from digestbot.cli import app
from digestbot.store.engine import make_engine
from digestbot.store.tables import PaperRow

HIDDEN = "\x1b]0;owned\x07\x1b[2J\x9b31m\u202e\u2066"
UNSAFE = ("\x1b", "\x07", "\x9b", "\u202e", "\u2066")


@pytest.fixture(autouse=True)
def _database(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each command uses the SQLite file in tmp_path and gives up on a server at once."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")
    monkeypatch.setenv("DIGESTBOT_HTTP_RETRIES", "0")


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_ingest_refuses_a_file_over_the_document_size_limit(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A 2 MB file with DIGESTBOT_MAX_DOCUMENT_MB=1 is one error line naming the setting."""
    monkeypatch.setenv("DIGESTBOT_MAX_DOCUMENT_MB", "1")
    big = tmp_path / "big.txt"
    big.write_bytes(b"x" * (2 * 2**20))
    result = run("ingest", str(big))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {big}: larger than 1 MB (raise DIGESTBOT_MAX_DOCUMENT_MB if the file is genuine)"
    ]


def test_ingest_refuses_a_decompression_bomb_from_a_url(
    tmp_path: Path, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A gzip answer growing past DIGESTBOT_MAX_DOCUMENT_MB is one error line; no paper is
    stored (only the failed run, for `status`)."""
    monkeypatch.setenv("DIGESTBOT_MAX_DOCUMENT_MB", "1")
    bomb = gzip.compress(b"[" + b" " * (8 * 2**20) + b"]")
    url = http_server.route("/feed", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    result = run("ingest", url)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {url}: the document is larger than 1 MB (decompressed)")
    assert run("papers", "list", "--json").stdout.strip() == "[]"


def stored_before_cleaning(tmp_path: Path) -> None:
    """A paper whose title holds terminal escapes, as a database written before ingest
    cleaned titles may hold it."""
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    title = f"Transformer{HIDDEN} tricks"
    with Session(engine) as session, session.begin():
        session.add(
            PaperRow(
                id="2501.00001",
                title=title,
                norm_title="transformer tricks",
                abstract=f"About transformers.{HIDDEN}",
                arxiv_id="2501.00001",
                categories=[f"cs.CL{HIDDEN}"],
                sources=[f"feed{HIDDEN}"],
                first_seen=datetime.now(UTC) - timedelta(hours=1),
            )
        )
    engine.dispose()


def test_papers_list_prints_no_terminal_escapes(tmp_path: Path) -> None:
    """A stored title with escape sequences and bidi controls is printed without them, in
    the table and in the JSON."""
    stored_before_cleaning(tmp_path)
    for args in (("papers", "list"), ("papers", "list", "--json")):
        result = run(*args)
        assert result.exit_code == 0
        assert not any(c in result.stdout for c in UNSAFE), repr(result.stdout)
    listed = json.loads(run("papers", "list", "--json").stdout)
    assert listed[0]["title"] == "Transformer ]0;owned  [2J 31m tricks"


def test_preview_prints_no_terminal_escapes(tmp_path: Path) -> None:
    """The subject and text part `preview` prints carry no escape sequences or bidi
    controls from a paper's title and abstract."""
    stored_before_cleaning(tmp_path)
    (tmp_path / "subscriptions.yaml").write_text(
        "subscribers:\n  - email: alice@example.org\n    rules:\n      - any: [transformer]\n"
    )
    assert run("subscriptions", "sync").exit_code == 0
    result = run("preview", "alice@example.org")
    assert result.exit_code == 0, result.stderr
    assert "Transformer ]0;owned" in result.stdout
    assert not any(c in result.stdout for c in UNSAFE), repr(result.stdout)


def test_ingest_warns_of_a_title_cut_to_the_bounds(tmp_path: Path) -> None:
    """A listing with a 2 MB title is ingested with the title cut, and one warning says so."""
    listing = [{"paper": {"id": "2501.00002", "title": "Long " * 400_000, "summary": "S."}}]
    path = tmp_path / "daily.json"
    path.write_text(json.dumps(listing))
    result = run("ingest", str(path))
    assert result.exit_code == 0
    assert f"{path}: 1 new, 0 already known, 0 skipped" in result.stdout
    (warning,) = result.stderr.strip().splitlines()
    assert warning.startswith(f"Warning: {path}: paper 1 (Long Long")
    assert warning.endswith("cut title to 1,000 characters")
    (paper,) = json.loads(run("papers", "list", "--json").stdout)
    assert len(paper["title"]) == 1_000


def test_ingest_of_a_200000_deep_json_document_is_one_error_line(tmp_path: Path) -> None:
    """JSON nested 200,000 deep is `Error: …` and exit 1, not a RecursionError traceback."""
    deep = tmp_path / "deep.json"
    deep.write_text("[" * 200_000 + "]" * 200_000)
    result = run("ingest", str(deep))
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [
        f"Error: {deep}: JSON nested too deeply to read (is this a daily_papers response?)"
    ]
