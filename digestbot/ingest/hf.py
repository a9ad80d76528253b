"""Ingest stage: parse the Hugging Face Daily Papers JSON API (`/api/daily_papers`)."""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

from digestbot.errors import ListingError
from digestbot.ingest.links import arxiv_links, clean_arxiv_id, web_url
from digestbot.models import ListedPaper, Listing

HF_SITE = "https://huggingface.co"


def parse_hf_json(data: bytes, *, source: str) -> Listing:
    """Parse a daily_papers response; a malformed item is skipped with its position."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ListingError(
            f"{source}: not valid JSON: {exc}", "the response was cut off or is not JSON"
        ) from None
    except RecursionError:
        raise ListingError(
            f"{source}: JSON nested too deeply to read", "is this a daily_papers response?"
        ) from None
    if isinstance(document, dict) and "error" in document:
        raise ListingError(f"{source}: the API answered an error: {document['error']}", "")
    if not isinstance(document, list):
        raise ListingError(
            f"{source}: expected a JSON list of daily papers", "is this a daily_papers response?"
        )
    papers: list[ListedPaper] = []
    skipped: list[str] = []
    for position, item in enumerate(document, 1):
        try:
            papers.append(_paper(item))
        except (KeyError, TypeError, ValueError) as exc:
            skipped.append(f"{source}: item {position}: {_problem(exc)}")
    return Listing(source=source, papers=tuple(papers), skipped=tuple(skipped))


def _paper(item: Any) -> ListedPaper:
    paper = item["paper"]
    arxiv_id = clean_arxiv_id(str(paper["id"]))
    if arxiv_id is None:
        raise ValueError(f"paper.id {paper['id']!r} is not an arXiv id")
    title = _text(paper.get("title") or item.get("title"))
    if not title:
        raise ValueError("no title")
    links = [("hf", f"{HF_SITE}/papers/{arxiv_id}"), *arxiv_links(arxiv_id)]
    for kind, key in (("code", "githubRepo"), ("project", "projectPage")):
        if url := web_url(paper.get(key)):
            links.append((kind, url))
    return ListedPaper(
        title=title,
        abstract=_text(paper.get("summary") or item.get("summary")),
        published=_day(paper.get("publishedAt") or item.get("publishedAt")),
        upvotes=_count(paper.get("upvotes")),
        authors=tuple(
            _text(a["name"])
            for a in paper.get("authors") or []
            if isinstance(a, dict) and a.get("name")
        ),
        arxiv_id=arxiv_id,
        links=tuple(links),
        comments=_count(item.get("numComments")),
        keywords=tuple(str(k) for k in paper.get("ai_keywords") or [] if isinstance(k, str)),
    )


def _text(value: Any) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):
        raise TypeError(f"expected text, got {type(value).__name__}")
    return " ".join(value.split())


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _day(value: Any) -> date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).date()
    except ValueError:
        return None


def _problem(exc: Exception) -> str:
    if isinstance(exc, KeyError):
        return f"missing {exc.args[0]!r}"
    return str(exc)
