"""Ingest stage: arXiv ids and the links derived from them (pure)."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlsplit

# New-style ids (2501.01234) and old-style ones (hep-th/9901001), optionally versioned.
_ARXIV_ID = re.compile(
    r"(?:arxiv\.org/(?:abs|pdf)/|oai:arxiv\.org:|arxiv:\s*|^)"
    r"(?P<id>\d{4}\.\d{4,5}|[a-z-]+(?:\.[a-z-]+)?/\d{7})(?:v\d+)?(?:\.pdf)?(?=$|[^\w.])",
    re.IGNORECASE,
)


def clean_arxiv_id(text: str | None) -> str | None:
    """The bare arXiv id (no version, no prefix) found in an id, a URL or a guid."""
    if not text:
        return None
    match = _ARXIV_ID.search(text.strip())
    return match["id"] if match else None


def find_arxiv_id(*texts: str | None) -> str | None:
    """The first arXiv id in any of `texts` that names one through an arxiv.org URL or prefix."""
    for text in texts:
        if text and ("arxiv" in text.lower()) and (found := clean_arxiv_id(text)):
            return found
    return None


def arxiv_links(arxiv_id: str) -> list[tuple[str, str]]:
    """The abstract page and the PDF of an arXiv paper."""
    return [
        ("abs", f"https://arxiv.org/abs/{arxiv_id}"),
        ("pdf", f"https://arxiv.org/pdf/{arxiv_id}"),
    ]


def web_url(value: Any) -> str | None:
    """`value` if it is an absolute http(s) URL; anything else (javascript:, relative) is None."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc else None
