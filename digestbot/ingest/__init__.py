"""Ingest stage: read listings from files or the network and parse them into ListedPapers.

Formats: the Daily Papers page saved as text, the Hugging Face daily_papers JSON, arXiv RSS,
the arXiv API's Atom, and any RSS or Atom feed. `parse_document` tells them apart by content.
"""

from __future__ import annotations

import os
from dataclasses import replace
from datetime import UTC, date, datetime
from pathlib import Path

from digestbot.errors import ListingError
from digestbot.ingest.dailytext import parse_daily_papers
from digestbot.ingest.detect import parse_document
from digestbot.ingest.http import MAX_DOCUMENT_BYTES
from digestbot.models import Listing

__all__ = ["parse_daily_papers", "parse_document", "parse_saved", "read_listing", "read_saved"]


def read_listing(
    path: Path,
    *,
    today: date,
    year: int | None = None,
    include_replacements: bool = False,
    max_bytes: int = MAX_DOCUMENT_BYTES,
) -> Listing:
    """Read a saved listing (text page, HF JSON or feed file) from `path` and parse it;
    a file over `max_bytes` is refused before it is read.

    A page that prints dates without their year is dated by the file's modification time
    (the day it was saved, as far as anyone knows; `today` if that lies ahead) unless `year`
    is given; the Listing's notes say which year was assumed and why.
    """
    data, saved = read_saved(path, max_bytes=max_bytes)
    return parse_saved(
        data, path, saved=saved, today=today, year=year, include_replacements=include_replacements
    )


def read_saved(path: Path, *, max_bytes: int = MAX_DOCUMENT_BYTES) -> tuple[bytes, date]:
    """The bytes of a saved listing (refused when over `max_bytes`) and its day of saving."""
    try:
        # Read at most one byte past the limit: a pipe or device has no size to check first.
        with path.open("rb") as file:
            saved = datetime.fromtimestamp(os.fstat(file.fileno()).st_mtime, UTC).date()
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
    return data, saved


def parse_saved(
    data: bytes,
    path: Path,
    *,
    saved: date,
    today: date,
    year: int | None = None,
    include_replacements: bool = False,
) -> Listing:
    """Parse the bytes `read_saved` gave, dating a yearless page as `read_listing` says."""
    day = min(saved, today)
    listing = parse_document(
        data, source=str(path), today=day, year=year, include_replacements=include_replacements
    )
    if listing.assumed_year is None:
        return listing
    basis = f"the file's modification time ({day})" if day < today else f"today's date ({day})"
    note = (
        f"{path}: the page gives no year; assumed {listing.assumed_year} (its day's latest "
        f"date not after {basis}, and later than any year its papers print); use --year to "
        "say otherwise"
    )
    return replace(listing, notes=(*listing.notes, note))
