"""Ingest stage: parse RSS and Atom feeds (arXiv RSS, the arXiv API, any blog) with feedparser."""

from __future__ import annotations

import re
import time
import xml.sax
from dataclasses import dataclass
from datetime import date
from html.parser import HTMLParser
from typing import Any

import feedparser

from digestbot.errors import ListingError
from digestbot.ingest.links import arxiv_links, find_arxiv_id, web_url
from digestbot.models import ListedPaper, Listing

KEEP_ANNOUNCEMENTS = frozenset({"new", "cross"})
_ABSTRACT = re.compile(r"\bAbstract:\s*", re.IGNORECASE)
_AUTHOR_SPLIT = re.compile(r",\s*(?:and\s+)?|\s+and\s+")


@dataclass(frozen=True)
class FeedPage:
    """One parsed feed document, with the arXiv API's paging figures when it has them."""

    listing: Listing
    total: int | None = None
    start: int | None = None
    per_page: int | None = None


def parse_feed(data: bytes, *, source: str, include_replacements: bool = False) -> FeedPage:
    """Parse an RSS 2.0 or Atom document; arXiv's own fields are used where present."""
    parsed = feedparser.parse(data)
    if parsed.get("bozo") and isinstance(parsed.get("bozo_exception"), xml.sax.SAXException):
        problem = " ".join(str(parsed["bozo_exception"]).split())
        raise ListingError(
            f"{source}: not a well-formed feed: {problem}", "the document is cut off or not XML"
        )
    if parsed.get("version", "") == "" and not parsed.entries:
        raise ListingError(f"{source}: not an RSS or Atom feed", "check the URL or the file")
    papers: list[ListedPaper] = []
    skipped: list[str] = []
    for position, entry in enumerate(parsed.entries, 1):
        announce = str(entry.get("arxiv_announce_type", "new")).strip().lower()
        if announce not in KEEP_ANNOUNCEMENTS and not include_replacements:
            continue
        try:
            papers.append(_paper(entry))
        except ValueError as exc:
            skipped.append(f"{source}: entry {position}: {exc}")
    feed = parsed.get("feed", {})
    return FeedPage(
        listing=Listing(source=source, papers=tuple(papers), skipped=tuple(skipped)),
        total=_int(feed.get("opensearch_totalresults")),
        start=_int(feed.get("opensearch_startindex")),
        per_page=_int(feed.get("opensearch_itemsperpage")),
    )


def _paper(entry: Any) -> ListedPaper:
    title = " ".join(str(entry.get("title", "")).split())
    if not title:
        raise ValueError("no title")
    link = web_url(entry.get("link"))
    arxiv_id = find_arxiv_id(entry.get("id"), entry.get("guid"), link)
    links: list[tuple[str, str]] = arxiv_links(arxiv_id) if arxiv_id else []
    for extra in entry.get("links", []):
        if extra.get("title") == "pdf" and (url := web_url(extra.get("href"))):
            links = [(k, u) for k, u in links if k != "pdf"] + [("pdf", url)]
    if link and not arxiv_id:
        links.append(("page", link))
    return ListedPaper(
        title=title,
        abstract=_abstract(entry),
        published=_day(entry.get("published_parsed") or entry.get("updated_parsed")),
        authors=_authors(entry),
        arxiv_id=arxiv_id,
        categories=_categories(entry),
        links=tuple(links),
    )


def _categories(entry: Any) -> tuple[str, ...]:
    """The entry's categories, arXiv's primary one first."""
    primary = entry.get("arxiv_primary_category") or {}
    terms = [primary.get("term"), *(t.get("term") for t in entry.get("tags", []))]
    return tuple(dict.fromkeys(str(term) for term in terms if term))


def _abstract(entry: Any) -> str:
    """The summary as plain text; arXiv RSS puts the abstract after 'Abstract:'."""
    raw, detail = str(entry.get("summary") or ""), entry.get("summary_detail") or {}
    if not raw and entry.get("content"):
        raw, detail = str(entry["content"][0].get("value", "")), entry["content"][0]
    # Plain text as it is: its "<n>" is the abstract's own, unescaped by feedparser.
    text = raw if detail.get("type") == "text/plain" else _plain_text(raw)
    parts = _ABSTRACT.split(text, maxsplit=1)
    if len(parts) == 2 and text.lower().startswith("arxiv:"):
        text = parts[1]
    return " ".join(text.split())


def _authors(entry: Any) -> tuple[str, ...]:
    names: list[str] = []
    for author in entry.get("authors", []):
        # arXiv RSS gives every author in one dc:creator: "A. One, B. Two, and C. Three".
        names.extend(n.strip() for n in _AUTHOR_SPLIT.split(str(author.get("name", ""))))
    if not names and entry.get("author"):
        names.extend(n.strip() for n in _AUTHOR_SPLIT.split(str(entry["author"])))
    return tuple(n for n in dict.fromkeys(names) if n)


def _day(parsed: time.struct_time | None) -> date | None:
    return date(parsed.tm_year, parsed.tm_mon, parsed.tm_mday) if parsed else None


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class _TextOnly(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _plain_text(markup: str) -> str:
    """Text content of an HTML fragment (feed summaries are often HTML)."""
    if "<" not in markup and "&" not in markup:
        return markup
    parser = _TextOnly()
    parser.feed(markup)
    parser.close()
    return " ".join("".join(parser.parts).split())
