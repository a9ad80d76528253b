"""Tests for the command line given hostile input: oversized documents, deep JSON, terminal
escapes in titles, and two ingests at once; each is one `Error: …` line or a clean output."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest
from conftest import HttpServer, Reply, db_fingerprint
from typer.testing import CliRunner, Result

from digestbot.cli import app


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
    """A gzip answer growing past DIGESTBOT_MAX_DOCUMENT_MB is one error line; nothing is
    written."""
    monkeypatch.setenv("DIGESTBOT_MAX_DOCUMENT_MB", "1")
    run("papers", "list")
    before = db_fingerprint(tmp_path / "digestbot.db")
    bomb = gzip.compress(b"[" + b" " * (8 * 2**20) + b"]")
    url = http_server.route("/feed", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    result = run("ingest", url)
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: {url}: the document is larger than 1 MB (decompressed)")
    assert db_fingerprint(tmp_path / "digestbot.db") == before
