"""Tests for parsing the recorded HF JSON, arXiv RSS, arXiv API and blog Atom fixtures."""

from __future__ import annotations

from datetime import date

import pytest
from conftest import FEEDS

from digestbot.errors import ListingError
from digestbot.ingest import read_listing
from digestbot.ingest.feeds import parse_feed
from digestbot.ingest.hf import parse_hf_json
from digestbot.models import ListedPaper

TODAY = date(2025, 1, 16)


def papers(name: str, **kwargs: bool) -> dict[str, ListedPaper]:
    listing = read_listing(FEEDS / name, today=TODAY, **kwargs)
    return {p.arxiv_id or p.title: p for p in listing.papers}


def test_hf_items_carry_id_authors_upvotes_comments_and_links() -> None:
    """Each HF item becomes a paper with its arXiv id, HF fields and links."""
    hf = papers("hf_daily_papers_2025-01-15.json")
    assert list(hf) == [
        "2501.08313",
        "2501.06252",
        "2501.08316",
        "2501.08187",
        "2501.08292",
        "2501.08120",
    ]
    halogen = hf["2501.08292"]
    assert halogen.title == "HALoGEN: Fantastic LLM Hallucinations and Where to Find Them"
    assert (halogen.upvotes, halogen.comments, halogen.published) == (12, 1, date(2025, 1, 14))
    assert halogen.authors[:2] == ("Abhilasha Ravichander", "Shrusti Ghela")
    assert dict(halogen.links) == {
        "hf": "https://huggingface.co/papers/2501.08292",
        "abs": "https://arxiv.org/abs/2501.08292",
        "pdf": "https://arxiv.org/pdf/2501.08292",
        "code": "https://github.com/AbhilashaRavichander/HALoGEN",
        "project": "https://halogen-hallucinations.github.io/",
    }


def test_hf_tolerates_missing_and_extra_fields() -> None:
    """An item without repo, page or keywords, and one with unknown fields, both parse."""
    hf = papers("hf_daily_papers_2025-01-15.json")
    assert {k for k, _ in hf["2501.08187"].links} == {"hf", "abs", "pdf"}
    assert hf["2501.08187"].keywords == ()
    assert hf["2501.06252"].title == "Transformer^2: Self-adaptive LLMs"


def test_hf_unwraps_titles_and_keeps_non_ascii() -> None:
    """Line-wrapped titles are joined; accents and URLs survive."""
    paper = papers("hf_daily_papers_2025-01-15.json")["2501.08120"]
    assert paper.title == (
        "Neural Spectral Operators for the Time-Dependent Schrödinger Equation in the "
        "Semiclassical Régime"
    )
    assert paper.authors[0] == "Émilie Fournier"
    assert paper.abstract.endswith("https://github.com/efournier/specop.")


def test_a_malformed_hf_item_is_skipped_with_its_position() -> None:
    """Items without a paper id or title are skipped and named; the rest are kept."""
    data = (
        b'[{"paper": {"id": "2501.00001", "title": "Good", "summary": "s"}}, {"paper": {}},'
        b' {"title": "no paper"}]'
    )
    listing = parse_hf_json(data, source="hf.json")
    assert [p.arxiv_id for p in listing.papers] == ["2501.00001"]
    assert listing.skipped == ("hf.json: item 2: missing 'id'", "hf.json: item 3: missing 'paper'")


def test_arxiv_rss_keeps_new_and_cross_and_skips_replacements() -> None:
    """Only new and cross-listed announcements are kept unless replacements are asked for."""
    assert list(papers("arxiv_rss_cs.CL.xml")) == [
        "2501.08248",
        "2501.08292",
        "2501.08319",
        "2501.08157",
    ]
    every = papers("arxiv_rss_cs.CL.xml", include_replacements=True)
    assert {"2410.19876", "2409.14602"} <= set(every)


def test_arxiv_rss_takes_authors_categories_and_the_abstract() -> None:
    """dc:creator splits into names, categories are kept, the abstract follows 'Abstract:'."""
    paper = papers("arxiv_rss_cs.CL.xml")["2501.08248"]
    assert paper.authors[:3] == ("Yifu Qiu", "Varun Embar", "Yizhe Zhang")
    assert paper.categories == ("cs.CL", "cs.AI", "cs.IR")
    assert paper.abstract.startswith("Recent long-context language models (LCLMs)")
    assert "Announce Type" not in paper.abstract
    cross = papers("arxiv_rss_cs.CL.xml")["2501.08157"]
    assert "$O(n \\log n)$" in cross.abstract


def test_arxiv_api_pages_report_paging_and_versionless_ids() -> None:
    """The Atom API's opensearch figures are read; ids lose their version suffix."""
    page = parse_feed((FEEDS / "arxiv_api_page1.xml").read_bytes(), source="api")
    assert (page.total, page.start, page.per_page) == (5, 0, 3)
    ids = [p.arxiv_id for p in page.listing.papers]
    assert ids == ["2501.04821", "2501.03456", "2501.02345"]
    first = page.listing.papers[0]
    assert first.title.startswith("Speculative Decoding Meets Quantization: Error Compounding")
    assert "  " not in first.title
    assert dict(first.links)["pdf"].startswith("http://arxiv.org/pdf/2501.04821")


def test_a_generic_atom_feed_gives_pages_without_ids() -> None:
    """Blog entries keep their link as a page link and their HTML content as plain text."""
    blog = papers("generic_atom_blog.xml")
    entry = blog["Evaluating long-context models without fooling ourselves"]
    assert entry.arxiv_id is None
    assert dict(entry.links) == {
        "page": "https://kestrel-nlp.example.org/2025/01/13/long-context-evaluation.html"
    }
    assert "<" not in entry.abstract and "&mdash;" not in entry.abstract
    assert entry.authors == ("Tariq Haddad",)


@pytest.mark.parametrize(
    ("name", "problem"),
    [("invalid.json", "not valid JSON"), ("invalid.xml", "not a well-formed feed")],
)
def test_a_truncated_document_is_an_error_not_a_partial_listing(name: str, problem: str) -> None:
    """A document cut off mid-way is rejected whole, naming the file and the problem."""
    with pytest.raises(ListingError, match=problem) as caught:
        read_listing(FEEDS / name, today=TODAY)
    assert str(caught.value).startswith(str(FEEDS / name))
