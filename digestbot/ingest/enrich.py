"""Ingest stage, enrich (pure): find a title-only paper among the arXiv API's answers.

A candidate is adopted only when its normalised title is at rapidfuzz ratio >= TITLE_MATCH
(the same normalisation and threshold as dedupe) and everything else both sides know agrees:
the first author's family name, the year (at most one apart: a page's date may be a later
version's), and the abstract. Two different papers that pass equally are a tie: neither is
adopted, since a wrong id is worse than none.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import date

from rapidfuzz import fuzz

from digestbot.ingest.links import arxiv_links
from digestbot.ingest.sameness import ABSTRACT_MATCH
from digestbot.ingest.textnorm import normalise_title, words
from digestbot.models import ListedPaper

TITLE_MATCH = 95.0
HF_SITE = "https://huggingface.co"
NOT_FOUND = "no alike title"
_MAX_QUERY_WORDS = 12  # a title's query needs only its longest words to find it


@dataclass(frozen=True)
class Sought:
    """A stored paper known only by its title: what a lookup compares candidates with."""

    paper_id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    published: date | None = None


@dataclass(frozen=True)
class Choice:
    """What a lookup found for one paper: the candidate to adopt, or None and why not."""

    paper_id: str
    adopted: ListedPaper | None
    reason: str = ""


def phrase(title: str) -> str:
    """The arXiv API's title phrase for `title`: its words, in order, quoted."""
    return f'ti:"{" ".join(words(title))}"'


def titles_query(titles: Iterable[str]) -> str:
    """One search_query asking for every title in `titles` at once."""
    return " OR ".join(phrase(title) for title in titles)


def words_query(title: str) -> str:
    """A looser search for one title: its longest words in any order (a title arXiv prints
    with a hyphen or TeX where the page has none defeats the phrase)."""
    found = list(dict.fromkeys(w for w in words(title) if len(w) > 2))
    longest = sorted(found, key=len, reverse=True)[:_MAX_QUERY_WORDS]
    kept = [w for w in found if w in longest] or words(title)
    return " AND ".join(f"ti:{w}" for w in kept)


def choose(sought: Sought, candidates: Sequence[ListedPaper]) -> Choice:
    """The candidate that is `sought`'s paper, or None with the reason none is."""
    title = normalise_title(sought.title)
    scored: dict[str, tuple[float, ListedPaper]] = {}
    near: list[str] = []
    for candidate in candidates:
        if not candidate.arxiv_id:
            continue
        score = fuzz.ratio(title, normalise_title(candidate.title))
        if score < TITLE_MATCH:
            continue
        disagreement = _disagreement(sought, candidate)
        if disagreement:
            near.append(f"{candidate.arxiv_id} ({disagreement})")
        elif score > scored.get(candidate.arxiv_id, (-1.0, candidate))[0]:
            scored[candidate.arxiv_id] = (score, candidate)
    if not scored:
        reason = "alike titles disagree: " + "; ".join(near) if near else NOT_FOUND
        return Choice(sought.paper_id, None, reason)
    best = max(score for score, _ in scored.values())
    top = [candidate for score, candidate in scored.values() if score == best]
    if len(top) > 1:
        ids = ", ".join(sorted(c.arxiv_id or "" for c in top))
        return Choice(sought.paper_id, None, f"ambiguous: {ids}")
    return Choice(sought.paper_id, top[0])


def _disagreement(sought: Sought, candidate: ListedPaper) -> str:
    """What `candidate` contradicts of what is known of `sought` ("" when nothing)."""
    mine, theirs = _family(sought.authors), _family(candidate.authors)
    if mine and theirs and mine != theirs:
        return f"first author {theirs}, not {mine}"
    years = (sought.published, candidate.published)
    if years[0] and years[1] and abs(years[0].year - years[1].year) > 1:
        return f"published {years[1].year}, not {years[0].year}"
    if sought.abstract.strip() and candidate.abstract.strip():
        a, b = " ".join(words(sought.abstract)), " ".join(words(candidate.abstract))
        if fuzz.token_set_ratio(a, b) < ABSTRACT_MATCH:
            return "a different abstract"
    return ""


def _family(authors: Sequence[str]) -> str:
    """The first author's family name, folded: the last word of "Given Family", the first
    of "Family, Given"."""
    if not authors:
        return ""
    name = authors[0]
    parts = words(name.split(",")[0]) if "," in name else words(name)
    return parts[-1] if parts else ""


def adoption(candidate: ListedPaper) -> ListedPaper:
    """What a paper gains from its arXiv record: id, authors, categories, links (the
    abstract page, the PDF and the Hugging Face paper page) and published date."""
    arxiv_id = candidate.arxiv_id or ""
    links: dict[str, str] = {}
    for kind, url in (("hf", f"{HF_SITE}/papers/{arxiv_id}"), *arxiv_links(arxiv_id)):
        links.setdefault(kind, url)
    for kind, url in candidate.links:
        links.setdefault(kind, url)
    return replace(candidate, links=tuple(links.items()))
