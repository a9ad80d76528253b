"""Ingest stage (pure): whether two sightings with alike titles are the same paper.

Titles alone mislead: "Improving Image Generation with …" and "Improving Video Generation
with …" score 95.9. So a title that is only alike holds when what else both sightings know
agrees: their authors share names, their years are at most one apart, their abstracts read
alike. The very same normalised title needs only the years to agree: a blog post about a
paper names its own author and summary, not the paper's.
"""

from __future__ import annotations

from datetime import date

from rapidfuzz import fuzz

from digestbot.ingest.textnorm import words

AUTHOR_OVERLAP = 0.5  # share of the shorter list's name words the other list must have
ABSTRACT_MATCH = 85.0  # rapidfuzz token_set_ratio; a cut-off abstract still scores 100


def same_paper(
    one: tuple[tuple[str, ...], date | None, str],
    other: tuple[tuple[str, ...], date | None, str],
    *,
    same_title: bool,
) -> bool:
    """Whether two sightings' (authors, published, abstract) agree wherever both know them;
    with `same_title` (equal normalised titles) only the years are compared."""
    (authors_a, day_a, abstract_a), (authors_b, day_b, abstract_b) = one, other
    if day_a and day_b and abs(day_a.year - day_b.year) > 1:
        return False
    if same_title:
        return True
    if authors_a and authors_b and not _authors_agree(authors_a, authors_b):
        return False
    if abstract_a.strip() and abstract_b.strip():
        a, b = " ".join(words(abstract_a)), " ".join(words(abstract_b))
        return fuzz.token_set_ratio(a, b) >= ABSTRACT_MATCH
    return True


def _authors_agree(one: tuple[str, ...], other: tuple[str, ...]) -> bool:
    """Enough name words in common: initials against full names still share surnames."""
    a = {w for name in one for w in words(name) if len(w) > 1}
    b = {w for name in other for w in words(name) if len(w) > 1}
    if not a or not b:
        return True
    return len(a & b) / min(len(a), len(b)) >= AUTHOR_OVERLAP
