"""Tests for folder sources: new, changed and unchanged files, per-file problems, files still
being written, globs, and one transaction per file."""

from __future__ import annotations

import os
import shutil
import sqlite3
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FEEDS, LISTING_000, LISTINGS
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, select

from digestbot.ingest.folder import ingest_folder, list_files
from digestbot.settings import Settings
from digestbot.store.tables import FolderFileRow, PaperRow

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
LISTING_001 = LISTINGS / "001_da432fa98501e883.txt"


def drop(source: Path, folder: Path, name: str, *, age: float = 60.0) -> Path:
    """Copy `source` into `folder` as `name`, modified `age` seconds ago."""
    folder.mkdir(exist_ok=True)
    target = folder / name
    shutil.copyfile(source, target)
    then = time.time() - age
    os.utime(target, (then, then))
    return target


def recorded(engine: Engine) -> dict[str, str]:
    with Session(engine) as session:
        return {row.path: row.sha256 for row in session.exec(select(FolderFileRow))}


def paper_count(engine: Engine) -> int:
    with Session(engine) as session:
        return len(session.exec(select(PaperRow.id)).all())


def test_new_files_go_in_and_unchanged_ones_are_not_read_again(
    engine: Engine, tmp_path: Path
) -> None:
    """The first run ingests each file of every supported format; the second finds them all
    unchanged and stores nothing."""
    folder = tmp_path / "papers"
    drop(LISTING_000, folder, "page.txt")
    drop(FEEDS / "hf_daily_papers_2025-01-16.json", folder, "hf.json")
    first = ingest_folder(engine, str(folder), source="folder:x", now=NOW)
    assert [Path(r.source).name for r in first.ingested] == ["hf.json", "page.txt"]
    assert first.new > 0 and first.problems == () and first.error() is None
    assert set(recorded(engine)) == {str(folder / "hf.json"), str(folder / "page.txt")}
    second = ingest_folder(engine, str(folder), source="folder:x", now=NOW + timedelta(minutes=5))
    assert second.ingested == () and second.unchanged == 2 and second.new == 0


def test_a_changed_file_is_ingested_again(engine: Engine, tmp_path: Path) -> None:
    """A file whose content changes under the same name is read again and its hash updated."""
    folder = tmp_path / "papers"
    page = drop(LISTING_000, folder, "page.txt")
    ingest_folder(engine, str(folder), source="folder:x", now=NOW)
    before = recorded(engine)[str(page)]
    drop(LISTING_001, folder, "page.txt")
    again = ingest_folder(engine, str(folder), source="folder:x", now=NOW + timedelta(minutes=5))
    assert len(again.ingested) == 1 and again.new > 0
    assert recorded(engine)[str(page)] != before


def test_an_unreadable_file_is_reported_by_name_while_the_others_go_in(
    engine: Engine, tmp_path: Path
) -> None:
    """A file that does not parse and one over the size limit are each reported with their
    reason while the good file is stored; the next run says nothing more of the unchanged
    file that did not parse (the one too large to read is tried again)."""
    folder = tmp_path / "papers"
    drop(LISTING_000, folder, "good.txt")
    (folder / "notes.txt").write_text("shopping list: milk, eggs\n")
    limit = LISTING_000.stat().st_size + 10
    (folder / "huge.json").write_bytes(b"[" + b" " * limit + b"]")
    os.utime(folder / "notes.txt", (0, 0))
    os.utime(folder / "huge.json", (0, 0))
    result = ingest_folder(engine, str(folder), source="folder:x", now=NOW, max_bytes=limit)
    reasons = {Path(p.path).name: p.reason for p in result.problems}
    assert set(reasons) == {"notes.txt", "huge.json"}
    assert reasons["huge.json"].startswith(f"{folder / 'huge.json'}: larger than")
    assert reasons["notes.txt"].startswith(f"{folder / 'notes.txt'}: not a Daily Papers listing")
    assert len(result.ingested) == 1 and result.new > 0
    assert "2 files not ingested" in (result.error() or "")
    assert sorted(recorded(engine)) == [str(folder / "good.txt"), str(folder / "notes.txt")]
    again = ingest_folder(engine, str(folder), source="folder:x", now=NOW, max_bytes=limit)
    assert [Path(p.path).name for p in again.problems] == ["huge.json"]
    assert again.unchanged == 2


def test_a_file_that_did_not_parse_is_read_again_once_changed(
    engine: Engine, tmp_path: Path
) -> None:
    """A half-saved page fails once; saved again, its new content goes in."""
    folder = tmp_path / "papers"
    half = LISTING_000.read_bytes()[:300]
    (folder).mkdir()
    (folder / "page.txt").write_bytes(b"\xff" + half)
    os.utime(folder / "page.txt", (0, 0))
    first = ingest_folder(engine, str(folder), source="folder:x", now=NOW)
    assert len(first.problems) == 1
    drop(LISTING_000, folder, "page.txt")
    second = ingest_folder(engine, str(folder), source="folder:x", now=NOW)
    assert second.problems == () and second.new == 39


def test_a_folder_source_reads_listings_not_the_pdfs_and_notes_beside_them(
    engine: Engine, tmp_path: Path
) -> None:
    """PDFs and notes in the folder are not listings and are left out; an HTML page is
    reported once, saying how to save it."""
    folder = tmp_path / "papers"
    drop(LISTING_000, folder, "page.txt")
    for name in ("paper.pdf", "notes.md", "README"):
        (folder / name).write_bytes(b"%PDF-1.7 not a listing")
    (folder / "page.html").write_text("<!DOCTYPE html><html><body>Daily Papers</body></html>")
    os.utime(folder / "page.html", (0, 0))
    assert [p.name for p in list_files(str(folder))] == ["page.html", "page.txt"]
    result = ingest_folder(engine, str(folder), source="folder:x", now=NOW)
    (problem,) = result.problems
    assert problem.reason.startswith(f"{folder / 'page.html'}: an HTML page")
    assert "save the Daily Papers page as text" in problem.reason
    assert ingest_folder(engine, str(folder), source="folder:x", now=NOW).problems == ()


def test_a_file_modified_just_now_waits_for_the_next_run(engine: Engine, tmp_path: Path) -> None:
    """A file a browser may still be writing (modified within two seconds) is left alone,
    then read once it has settled."""
    folder = tmp_path / "papers"
    page = drop(LISTING_000, folder, "page.txt", age=0.0)
    early = ingest_folder(engine, str(folder), source="folder:x", now=NOW)
    assert early.waiting == (str(page),) and early.ingested == () and recorded(engine) == {}
    later = ingest_folder(
        engine, str(folder), source="folder:x", now=NOW, wall=lambda: time.time() + 3
    )
    assert len(later.ingested) == 1 and later.waiting == ()


def test_hidden_files_folders_and_downloads_in_progress_are_left_out(tmp_path: Path) -> None:
    """A folder source covers its regular, visible files directly inside it; a glob with `**`
    reaches into subfolders but still skips hidden ones."""
    folder = tmp_path / "papers"
    for name in ("a.txt", ".hidden.txt", "b.json", "c.txt.crdownload", "d.html.part"):
        drop(LISTING_000, folder, name)
    (folder / "sub").mkdir()
    drop(LISTING_000, folder / "sub", "e.txt")
    (folder / ".cache").mkdir()
    drop(LISTING_000, folder / ".cache", "f.txt")
    assert [p.name for p in list_files(str(folder))] == ["a.txt", "b.json"]
    assert [p.name for p in list_files(f"{folder}/**/*.txt")] == ["a.txt", "e.txt"]
    assert [p.name for p in list_files(f"{folder}/*.json")] == ["b.json"]


def test_a_file_whose_papers_fail_to_store_gets_no_record(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """When the database refuses a file's papers, neither they nor the file's record are
    stored (one transaction), so the next run reads it again; files before it stay stored."""
    folder = tmp_path / "papers"
    drop(LISTING_000, folder, "a.txt")
    drop(LISTING_001, folder, "b.txt")
    # sqlite3's own `with` commits but does not close: closing() does.
    with closing(sqlite3.connect(tmp_path / "digestbot.db")) as conn, conn:
        conn.execute(
            "CREATE TRIGGER refuse AFTER INSERT ON folder_files WHEN NEW.path LIKE '%b.txt' "
            "BEGIN SELECT RAISE(ABORT, 'disk says no'); END"
        )
    ingest_folder(engine, f"{folder}/a.*", source="s", now=NOW)  # a.txt alone, to count
    stored = paper_count(engine)
    with pytest.raises(SQLAlchemyError, match="disk says no"):
        ingest_folder(engine, str(folder), source="s", now=NOW)
    assert list(recorded(engine)) == [str(folder / "a.txt")]
    assert paper_count(engine) == stored
