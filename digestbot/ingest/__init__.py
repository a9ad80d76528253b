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
from digestbot.models import Listing

__all__ = ["parse_daily_papers", "parse_document", "read_listing"]


def read_listing(
    path: Path, *, today: date, year: int | None = None, include_replacements: bool = False
) -> Listing:
    """Read a saved listing (text page, HF JSON or feed file) from `path` and parse it."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ListingError(f"{path}: no such file", "check the path") from None
    except OSError as exc:
        raise ListingError(f"{path}: cannot read it: {exc.strerror}", "check the path") from None
    return parse_document(
        data, source=str(path), today=today, year=year, include_replacements=include_replacements
    )
