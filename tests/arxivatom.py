"""Test helper: render arXiv API Atom pages, in the shape served since November 2025 or the one
before it (the stand-in's output; tests/fixtures/arxiv_api/README.md lists the differences)."""

from __future__ import annotations

import base64
import hashlib
import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote, urlencode
from xml.sax.saxutils import escape, quoteattr

ARXIV_NS = "http://arxiv.org/schemas/atom"
OPENSEARCH_NS = "http://a9.com/-/spec/opensearch/1.1/"
ATOM_NS = "http://www.w3.org/2005/Atom"
# The feed's <updated>: fixed, so rendered pages are byte-for-byte repeatable.
UPDATED = datetime(2026, 1, 15, 5, 0, tzinfo=UTC)


def _query_string(params: dict[str, str]) -> str:
    return (
        f"search_query={params.get('search_query', '')}&id_list={params.get('id_list', '')}"
        f"&start={params.get('start') or 0}&max_results={params.get('max_results') or 10}"
    )


def _search_id(params: dict[str, str]) -> str:
    digest = hashlib.sha1(_query_string(params).encode()).digest()
    return base64.b64encode(digest).decode()[:-1]


def _el(name: str, text: str, indent: str = "    ", attrs: str = "") -> str:
    return f"{indent}<{name}{attrs}>{escape(text)}</{name}>\n"


def _one_line(text: str) -> str:
    """The current shape prints titles and abstracts without their line breaks."""
    return re.sub(r"\s*\n\s*", " ", text)


def _wrap_abstract(text: str) -> str:
    """The legacy shape: two leading spaces, hard-wrapped at 79 columns, a closing newline."""
    lines: list[str] = []
    line = " "
    for word in text.split():
        if len(line) + 1 + len(word) > 79:
            lines.append(line)
            line = word
        else:
            line = f"{line} {word}"
    lines.append(line)
    return "\n".join(lines) + "\n"


def _versioned(entry: dict[str, Any]) -> str:
    return f"{entry['id']}v{entry.get('version', 1)}"


def _current_entry(entry: dict[str, Any]) -> str:
    vid = _versioned(entry)
    published = entry["published"]
    out = ["  <entry>\n", _el("id", f"http://arxiv.org/abs/{vid}")]
    out.append(_el("title", _one_line(entry["title"])))
    out.append(_el("updated", entry.get("updated", published)))
    out.append(f'    <link href="https://arxiv.org/abs/{vid}" rel="alternate" type="text/html"/>\n')
    out.append(
        f'    <link href="https://arxiv.org/pdf/{vid}" rel="related" type="application/pdf"'
        ' title="pdf"/>\n'
    )
    out.append(_el("summary", _one_line(entry["abstract"])))
    for cat in entry["categories"]:
        out.append(f"    <category term={quoteattr(cat)} scheme={quoteattr(ARXIV_NS)}/>\n")
    out.append(_el("published", published))
    if entry.get("comment"):
        out.append(_el("arxiv:comment", entry["comment"]))
    out.append(f"    <arxiv:primary_category term={quoteattr(entry['categories'][0])}/>\n")
    for name in entry["authors"]:
        out.append(f"    <author>\n{_el('name', name, '      ')}    </author>\n")
    out.append("  </entry>\n")
    return "".join(out)


def _legacy_entry(entry: dict[str, Any]) -> str:
    vid = _versioned(entry)
    published = entry["published"]
    arx = f' xmlns:arxiv="{ARXIV_NS}"'
    out = ["  <entry>\n", _el("id", f"http://arxiv.org/abs/{vid}")]
    out.append(_el("updated", entry.get("updated", published)))
    out.append(_el("published", published))
    out.append(_el("title", entry["title"]))
    out.append(_el("summary", _wrap_abstract(entry["abstract"])))
    for name in entry["authors"]:
        out.append(f"    <author>\n{_el('name', name, '      ')}    </author>\n")
    if entry.get("comment"):
        out.append(_el("arxiv:comment", entry["comment"], attrs=arx))
    out.append(f'    <link href="http://arxiv.org/abs/{vid}" rel="alternate" type="text/html"/>\n')
    out.append(
        f'    <link title="pdf" href="http://arxiv.org/pdf/{vid}" rel="related"'
        ' type="application/pdf"/>\n'
    )
    primary = quoteattr(entry["categories"][0])
    out.append(f"    <arxiv:primary_category{arx} term={primary} scheme={quoteattr(ARXIV_NS)}/>\n")
    for cat in entry["categories"]:
        out.append(f"    <category term={quoteattr(cat)} scheme={quoteattr(ARXIV_NS)}/>\n")
    out.append("  </entry>\n")
    return "".join(out)


def _current_head(params: dict[str, str], total: int, start: int, size: int) -> str:
    link = "https://arxiv.org/api/query?" + urlencode(
        {
            "search_query": params.get("search_query", ""),
            "start": start,
            "max_results": size,
            "id_list": params.get("id_list", ""),
        }
    )
    return (
        "<?xml version='1.0' encoding='UTF-8'?>\n"
        f'<feed xmlns:opensearch="{OPENSEARCH_NS}" xmlns:arxiv="{ARXIV_NS}" xmlns="{ATOM_NS}">\n'
        + _el("id", f"https://arxiv.org/api/{_search_id(params)}", "  ")
        + _el("title", f"arXiv Query: {_query_string(params)}", "  ")
        + _el("updated", UPDATED.strftime("%Y-%m-%dT%H:%M:%SZ"), "  ")
        + f'  <link href={quoteattr(link)} type="application/atom+xml"/>\n'
        + _el("opensearch:itemsPerPage", str(size), "  ")
        + _el("opensearch:totalResults", str(total), "  ")
        + _el("opensearch:startIndex", str(start), "  ")
    )


def _legacy_head(params: dict[str, str], total: int, start: int, size: int) -> str:
    link = "http://arxiv.org/api/query?" + quote(_query_string(params), safe="")
    ons = f' xmlns:opensearch="{OPENSEARCH_NS}"'
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        f'<feed xmlns="{ATOM_NS}">\n'
        f'  <link href={quoteattr(link)} rel="self" type="application/atom+xml"/>\n'
        + _el("title", f"ArXiv Query: {_query_string(params)}", "  ", ' type="html"')
        + _el("id", f"http://arxiv.org/api/{_search_id(params)}", "  ")
        + _el("updated", UPDATED.strftime("%Y-%m-%dT00:00:00-05:00"), "  ")
        + _el("opensearch:totalResults", str(total), "  ", ons)
        + _el("opensearch:startIndex", str(start), "  ", ons)
        + _el("opensearch:itemsPerPage", str(size), "  ", ons)
    )


def render_atom(
    entries: list[dict[str, Any]], params: dict[str, str], *, total: int, shape: str = "current"
) -> bytes:
    """One answer page of `entries` (already paged) for the request `params`."""
    start = int(params.get("start") or 0)
    size = int(params.get("max_results") or 10)
    if shape == "current":
        head, body = _current_head(params, total, start, size), map(_current_entry, entries)
    else:
        head, body = _legacy_head(params, total, start, size), map(_legacy_entry, entries)
    return (head + "".join(body) + "</feed>\n").encode("utf-8")
