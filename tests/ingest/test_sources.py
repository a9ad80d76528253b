"""Tests for parsing saved Daily Papers pages."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from conftest import LISTINGS

from digestbot.errors import ListingError
from digestbot.ingest import parse_daily_papers, read_listing

TODAY = date(2026, 11, 24)


def listing(prefix: str, year: int | None = None):  # type: ignore[no-untyped-def]
    (path,) = LISTINGS.glob(f"{prefix}_*.txt")
    return read_listing(path, today=TODAY, year=year)


def by_title(prefix: str, title: str):  # type: ignore[no-untyped-def]
    return next(p for p in listing(prefix).papers if p.title == title)


@pytest.mark.parametrize(
    ("prefix", "with_metadata", "without_metadata"),
    [("000", 38, 1), ("001", 63, 2), ("002", 68, 1), ("003", 0, 217)],
)
def test_it_reads_every_paper_of_each_shared_listing(
    prefix: str, with_metadata: int, without_metadata: int
) -> None:
    """Each listing yields its metadata-block papers plus the bare title/abstract pairs."""
    papers = listing(prefix).papers
    assert sum(p.published is not None for p in papers) == with_metadata
    assert sum(p.published is None for p in papers) == without_metadata
    assert len({p.title for p in papers}) == len(papers)
    assert all(p.title and len(p.abstract) > 100 for p in papers)
    assert listing(prefix).skipped == ()


def test_it_takes_authors_date_and_upvotes_from_the_metadata_block() -> None:
    """A block's author count, full date and trailing upvote count are all kept."""
    paper = by_title(
        "000", "fMRI-3D: A Comprehensive Dataset for Enhancing fMRI-based 3D Reconstruction"
    )
    assert paper.author_count == 6
    assert paper.published == date(2024, 9, 17)
    assert paper.upvotes == 1
    assert paper.abstract.startswith("Reconstructing 3D visuals from functional")
    assert paper.abstract.endswith("https://jianxgao.github.io/MinD-3D.")


def test_it_reads_the_metadata_of_a_block_in_each_listing() -> None:
    """A sample paper of the 002 and 001 listings comes with its author count and date."""
    paper = by_title("002", "Unforgettable Generalization in Language Models")
    assert (paper.author_count, paper.published, paper.upvotes) == (3, date(2024, 9, 3), None)
    first = listing("001").papers[0]
    assert first.title == "Transformer-based Image Generation from Scene Graphs"
    assert (first.author_count, first.published) == (3, date(2023, 3, 8))


def test_it_leaves_upvotes_unknown_when_the_block_shows_none() -> None:
    """A date line without a trailing number means no upvote count, not zero."""
    paper = by_title("000", listing("000").papers[0].title)
    assert paper.published == date(2024, 10, 23)
    assert paper.upvotes is None
    assert paper.author_count == 1


def test_it_keeps_an_organisation_line_instead_of_an_author_count() -> None:
    """The organisation's display name is kept when a block names one instead of authors."""
    (paper,) = [p for p in listing("001").papers if p.organisation]
    assert paper.organisation == "NYU VisionX"
    assert paper.author_count is None
    assert paper.published is not None


def test_it_dates_yearless_papers_in_the_listing_year() -> None:
    """'Oct 6' in a Dec 30 listing saved in 2026 is Oct 6, 2025, the listing's year."""
    papers = listing("000").papers
    yearless = [p for p in papers if p.published and p.published.year == 2025]
    assert yearless, "the Dec 30 listing has papers dated without a year"
    assert all(p.published <= date(2025, 12, 30) for p in papers if p.published)


def test_an_explicit_year_overrides_the_guess() -> None:
    """`year` sets the listing's year for dates that omit it."""
    papers = listing("000", year=2030).papers
    assert any(p.published and p.published.year == 2030 for p in papers)


def test_it_unglues_the_first_compact_title_from_subscribe() -> None:
    """The compact layout's first title loses the 'Subscribe' label saving glued to it."""
    first = listing("003").papers[0]
    assert first.title.startswith("U-GAT-IT: Unsupervised Generative Attentional Networks")
    assert first.abstract.startswith("We propose a novel method for unsupervised")


def test_it_keeps_non_ascii_titles_and_urls_verbatim() -> None:
    """Titles and abstracts are kept as written, URLs and non-ASCII characters included."""
    papers = [p for prefix in ("000", "001", "002", "003") for p in listing(prefix).papers]
    assert any(p.title.startswith("λ-ECLIPSE: Multi-Concept") for p in papers)
    assert any("https://github.com/" in p.abstract for p in papers)


def test_it_rejects_a_file_that_is_not_a_listing(tmp_path: Path) -> None:
    """Text in neither layout is a ListingError naming the file, not an empty listing."""
    path = tmp_path / "notes.txt"
    path.write_text("Shopping list\n\nmilk\neggs\n", encoding="utf-8")
    with pytest.raises(ListingError, match=r"notes\.txt: not a Daily Papers listing"):
        read_listing(path, today=TODAY)


def test_it_reports_a_missing_file(tmp_path: Path) -> None:
    """A path that does not exist is a ListingError with the path."""
    with pytest.raises(ListingError, match="no such file"):
        read_listing(tmp_path / "nope.txt", today=TODAY)


def test_it_skips_a_trailing_title_without_abstract() -> None:
    """A dangling title at the end is reported as skipped, the rest still parsed."""
    text = (
        "Daily Papers\n\nNov 3\n\nA title\n\nAn abstract.\n\n"
        "  • 2 authors\n·\nNov 1\n\nOrphan title\n"
    )
    parsed = parse_daily_papers(text, source="x.txt", today=TODAY)
    assert [p.title for p in parsed.papers] == ["A title"]
    assert parsed.papers[0].published == date(2026, 11, 1)
    assert parsed.skipped == ("x.txt: last block: a title without an abstract",)
