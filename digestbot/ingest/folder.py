"""Ingest stage, local edge: a `kind: folder` source's files, each new or changed one stored.

A file is known by its absolute path and the sha256 of its content (the `folder_files`
table): a run reads every file, and stores only those whose hash differs from the one
recorded. A file's papers and its record are one transaction, so a crash never marks a
file done whose papers are missing.

A file that does not parse is recorded too, with its hash: unchanged, it would fail the
same way on every run, so it is reported once, and read again when its content changes (a
browser finishing a half-saved page changes it). A file that cannot be read at all has no
content to record and is reported on every run.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot.errors import ListingError
from digestbot.ingest import papers, parse_saved, read_saved
from digestbot.ingest.http import MAX_DOCUMENT_BYTES
from digestbot.store.engine import write_session
from digestbot.store.tables import FolderFileRow

# A browser writes a saved page over a moment; a file modified this recently waits a run.
QUIET_SECONDS = 2.0
# What browsers name a download still in progress; renamed to its real name when done.
PARTIAL_SUFFIXES = (".crdownload", ".part", ".partial", ".download", ".tmp")
# What a folder (not a glob) source reads: listings saved as text, HF JSON and feeds; an
# HTML page is read to say how to save it instead. PDFs and notes beside them are not listings.
LISTING_SUFFIXES = (".txt", ".json", ".xml", ".rss", ".atom", ".html", ".htm")
_MAGIC = frozenset("*?[")


@dataclass(frozen=True)
class FileProblem:
    """A file that could not be read or parsed, and why (the reason names the file)."""

    path: str
    reason: str


@dataclass(frozen=True)
class FolderResult:
    """One run over a folder source: what each file stored, what was left, what failed."""

    source: str
    ingested: tuple[papers.IngestResult, ...] = ()
    unchanged: int = 0
    waiting: tuple[str, ...] = ()  # modified within QUIET_SECONDS: the next run reads them
    problems: tuple[FileProblem, ...] = field(default=())

    @property
    def new(self) -> int:
        return sum(r.new for r in self.ingested)

    @property
    def known(self) -> int:
        return sum(r.known for r in self.ingested)

    def error(self) -> str | None:
        """What to record as the source run's error: None when every file went in."""
        if not self.problems:
            return None
        count = len(self.problems)
        reasons = "; ".join(p.reason for p in self.problems)
        return f"{count} file{'s' if count != 1 else ''} not ingested: {reasons}"


def fixed_folder(pattern: str) -> Path:
    """The folder a path or glob starts from: everything before its first wildcard part."""
    parts = Path(pattern).parts
    fixed = parts[: _first_magic(parts)]
    return Path(*fixed) if fixed else Path(".")


def _first_magic(parts: tuple[str, ...]) -> int:
    return next((i for i, part in enumerate(parts) if _MAGIC & set(part)), len(parts))


def list_files(pattern: str) -> list[Path]:
    """The files a folder source covers, sorted: every regular file directly in a folder, or
    every one a glob matches (`**` recurses); hidden files and downloads in progress are
    left out. Raises ListingError when the folder is missing."""
    base = fixed_folder(pattern)
    if not base.is_dir():
        raise ListingError(f"{base}: no such folder", "create it, or fix `path:`")
    parts = Path(pattern).parts
    rest = parts[_first_magic(parts) :]
    if rest:
        return sorted(p for p in base.glob(str(Path(*rest))) if _wanted(p, base))
    listings = (p for p in base.iterdir() if p.suffix.lower() in LISTING_SUFFIXES)
    return sorted(p for p in listings if _wanted(p, base))


def _wanted(path: Path, base: Path) -> bool:
    names = path.relative_to(base).parts
    if any(name.startswith(".") for name in names) or path.name.endswith(PARTIAL_SUFFIXES):
        return False
    return path.is_file()  # follows links; leaves out folders, pipes and devices


def ingest_folder(
    engine: Engine,
    pattern: str,
    *,
    source: str,
    now: datetime,
    max_bytes: int = MAX_DOCUMENT_BYTES,
    quiet: float = QUIET_SECONDS,
    wall: Callable[[], float] = time.time,
) -> FolderResult:
    """Ingest the new and changed files of a folder source, each in its own transaction.

    A file that fails is reported and the others go on; a database failure stops the run
    (files stored before it stay stored). `wall` is the clock file times are compared with.
    """
    recorded = _recorded(engine)
    ingested: list[papers.IngestResult] = []
    waiting: list[str] = []
    problems: list[FileProblem] = []
    unchanged = 0
    for path in list_files(pattern):
        try:
            if wall() - path.stat().st_mtime < quiet:
                waiting.append(str(path))
                continue
            data, saved = read_saved(path, max_bytes=max_bytes)
            digest = hashlib.sha256(data).hexdigest()
            if recorded.get(str(path)) == digest:
                unchanged += 1
                continue
        except FileNotFoundError:
            continue  # removed since it was listed: nothing left to ingest
        except (ListingError, OSError) as exc:
            problems.append(_problem(path, exc))
            continue
        done = FolderFileRow(path=str(path), source=source, sha256=digest, ingested_at=now)
        try:
            listing = parse_saved(data, path, saved=saved, today=now.date())
        except ListingError as exc:
            # Said once per content: unchanged, it would fail the same way every run; saved
            # again (or finished saving), its new content is read.
            problems.append(_problem(path, exc))
            _remember(engine, done)
            continue
        ingested.append(papers.ingest(engine, listing, now=now, done=done))
    return FolderResult(source, tuple(ingested), unchanged, tuple(waiting), tuple(problems))


def _problem(path: Path, exc: ListingError | OSError) -> FileProblem:
    reason = str(exc) if isinstance(exc, ListingError) else f"cannot read it: {exc.strerror}"
    if not reason.startswith(str(path)):
        reason = f"{path}: {reason}"
    return FileProblem(str(path), reason)


def _remember(engine: Engine, done: FolderFileRow) -> None:
    with write_session(engine) as session:
        session.merge(done)


def _recorded(engine: Engine) -> dict[str, str]:
    """Path to content hash of every file ingested; by path alone, so a file two folder
    sources cover is read once, not again by each in turn."""
    with Session(engine) as session:
        return dict(session.exec(select(FolderFileRow.path, FolderFileRow.sha256)).all())
