"""Ingest stage: read listings from files or the network and parse them into ListedPapers.

Formats: the Daily Papers page saved as text, the Hugging Face daily_papers JSON, arXiv RSS,
the arXiv API's Atom, and any RSS or Atom feed. `parse_document` tells them apart by content.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from digestbot.errors import ListingError
from digestbot.ingest.dailytext import parse_daily_papers
from digestbot.ingest.detect import parse_document
from digestbot.ingest.http import MAX_DOCUMENT_BYTES
from digestbot.models import Listing

__all__ = ["parse_daily_papers", "parse_document", "read_listing"]


def read_listing(
    path: Path,
    *,
    today: date,
    year: int | None = None,
    include_replacements: bool = False,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Listing:
    """Read a saved listing (text page, HF JSON or feed file) from `path` and parse it;
    a file over `max_bytes` is refused before it is read."""
    try:
        # Read at most one byte past the limit: a pipe or device has no size to check first.
        with path.open("rb") as file:
            data = file.read(max_bytes + 1)
    except FileNotFoundError:
        raise ListingError(f"{path}: no such file", "check the path") from None
    except OSError as exc:
        raise ListingError(f"{path}: cannot read it: {exc.strerror}", "check the path") from None
    if len(data) > max_bytes:
        raise ListingError(
            f"{path}: larger than {max_bytes / 2**20:g} MB",
            "raise DIGESTBOT_MAX_DOCUMENT_MB if the file is genuine",
        )
    return parse_document(
        data, source=str(path), today=today, year=year, include_replacements=include_replacements
    )
