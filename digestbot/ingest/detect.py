"""Ingest stage: tell a listing's format from its first bytes and parse it (pure)."""

from __future__ import annotations

import re
from datetime import date

from digestbot.errors import ListingError
from digestbot.ingest.dailytext import parse_daily_papers
from digestbot.ingest.feeds import parse_feed
from digestbot.ingest.hf import parse_hf_json
from digestbot.models import Listing

_HTML = re.compile(rb"<!doctype\s+html|<html[\s>]", re.IGNORECASE)


def parse_document(
    data: bytes,
    *,
    source: str,
    today: date,
    year: int | None = None,
    include_replacements: bool = False,
) -> Listing:
    """Parse a listing in any supported format, detected from its first characters."""
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    if head in (b"[", b"{"):
        return parse_hf_json(data, source=source)
    if head == b"<" and _HTML.search(data[:2048]):
        raise ListingError(
            f"{source}: an HTML page, not a listing digestbot reads",
            "save the Daily Papers page as text (the browser's Save Page As, format Text),"
            " or give the page's JSON or a feed",
        )
    if head == b"<":
        return parse_feed(data, source=source, include_replacements=include_replacements).listing
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ListingError(
            f"{source}: not UTF-8 text, JSON or XML", "save the page as UTF-8 text"
        ) from None
    return parse_daily_papers(text, source=source, today=today, year=year)
