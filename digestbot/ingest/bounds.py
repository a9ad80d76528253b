"""Ingest stage (pure): bound and clean what a listing holds before any of it is stored.

A listing is outside input: a title of 200 MB, or ten thousand authors, would be kept,
matched and rendered again in every later plan. Past these bounds text is cut, lists are
shortened, and each cut is noted so the operator sees it.
"""

from __future__ import annotations

from dataclasses import replace

from digestbot.ingest.textnorm import safe_text
from digestbot.models import ListedPaper, Listing

MAX_PAPERS = 5_000  # per document; arXiv's busiest daily RSS lists about 1,500
MAX_TITLE = 1_000  # characters
MAX_ABSTRACT = 20_000  # characters; arXiv caps abstracts at 1,920
MAX_AUTHORS = 500  # names kept; author_count still says how many there were
MAX_NAME = 300  # characters of one author, organisation, category or keyword
MAX_TERMS = 100  # categories, and keywords, kept per paper


def bounded(listing: Listing) -> Listing:
    """`listing` with its papers cleaned and cut to the bounds; each cut adds a note."""
    notes = list(listing.trimmed)
    papers = listing.papers
    if len(papers) > MAX_PAPERS:
        notes.append(f"{listing.source}: kept the first {MAX_PAPERS:,} of {len(papers):,} papers")
        papers = papers[:MAX_PAPERS]
    kept = []
    for position, paper in enumerate(papers, 1):
        cuts: list[str] = []
        clean = _bounded_paper(paper, cuts)
        if cuts:
            fields = ", ".join(dict.fromkeys(cuts))
            notes.append(f"{listing.source}: paper {position} ({clean.title[:60]}): cut {fields}")
        kept.append(clean)
    return replace(listing, papers=tuple(kept), trimmed=tuple(notes))


def _bounded_paper(paper: ListedPaper, cuts: list[str]) -> ListedPaper:
    """The paper with every text cleaned and cut; the names of what was cut go to `cuts`."""
    authors = paper.authors
    if len(authors) > MAX_AUTHORS:
        cuts.append(f"authors to {MAX_AUTHORS:,} of {len(authors):,}")
        authors = authors[:MAX_AUTHORS]
    organisation = paper.organisation
    return replace(
        paper,
        title=_cut(paper.title, MAX_TITLE, "title", cuts),
        abstract=_cut(paper.abstract, MAX_ABSTRACT, "abstract", cuts),
        authors=tuple(_cut(a, MAX_NAME, "author names", cuts) for a in authors),
        author_count=paper.author_count or (len(paper.authors) or None),
        organisation=organisation and _cut(organisation, MAX_NAME, "organisation", cuts),
        categories=_terms(paper.categories, "categories", cuts),
        keywords=_terms(paper.keywords, "keywords", cuts),
    )


def _terms(values: tuple[str, ...], name: str, cuts: list[str]) -> tuple[str, ...]:
    if len(values) > MAX_TERMS:
        cuts.append(f"{name} to {MAX_TERMS} of {len(values):,}")
    return tuple(_cut(v, MAX_NAME, name, cuts) for v in values[:MAX_TERMS])


def _cut(text: str, limit: int, name: str, cuts: list[str]) -> str:
    """`text` cut to `limit` characters (ending in an ellipsis), cleaned of controls and
    single-spaced; a cut is recorded under `name`."""
    if len(text) > limit:
        cuts.append(f"{name} to {limit:,} characters")
        text = text[: limit - 1] + "…"
    return " ".join(safe_text(text).split())
