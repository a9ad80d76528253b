"""Tests for choosing a title-only paper's arXiv record among the API's answers."""

from __future__ import annotations

from datetime import date

from digestbot.ingest.enrich import (
    NOT_FOUND,
    Sought,
    adoption,
    choose,
    phrase,
    titles_query,
    words_query,
)
from digestbot.models import ListedPaper

ABSTRACT = (
    "We study how diffusion transformers scale with data and compute, and find that a "
    "simple change to the noise schedule improves sample quality at every size."
)
SOUGHT = Sought("t-1", "Scaling Diffusion Transformer: A Noise Schedule Study", ABSTRACT)


def record(arxiv_id: str = "2501.00001", **changes: object) -> ListedPaper:
    values: dict[str, object] = {
        "title": "Scaling Diffusion Transformers: A Noise-Schedule Study",
        "abstract": ABSTRACT,
        "published": date(2025, 1, 3),
        "authors": ("Ada Lovelace", "Alan Turing"),
        "arxiv_id": arxiv_id,
        "categories": ("cs.CV", "cs.LG"),
    }
    values.update(changes)
    return ListedPaper(**values)  # type: ignore[arg-type]


def test_it_adopts_the_record_whose_title_matches_once_normalised() -> None:
    """A plural, hyphens, case and punctuation (ratio 99) do not stop a match."""
    assert choose(SOUGHT, [record()]).adopted == record()


def test_it_adopts_nothing_for_a_title_just_under_the_threshold() -> None:
    """A near miss (one word changed, ratio 94.3) is another paper."""
    near = record(title="Scaling Diffusion Transformers: A Noise Schedule Survey")
    choice = choose(SOUGHT, [near])
    assert choice.adopted is None
    assert choice.reason == NOT_FOUND


def test_it_refuses_the_same_title_by_another_first_author() -> None:
    """When both sides name authors, the first author's family name must agree."""
    sought = Sought("t-1", SOUGHT.title, authors=("Grace Hopper",))
    choice = choose(sought, [record()])
    assert choice.adopted is None
    assert "first author lovelace, not hopper" in choice.reason


def test_it_accepts_the_first_author_written_family_name_first() -> None:
    """ "Lovelace, Ada" and "Ada Lovelace" are the same first author."""
    sought = Sought("t-1", SOUGHT.title, authors=("Lovelace, Ada",))
    assert choose(sought, [record()]).adopted is not None


def test_it_refuses_the_same_title_published_years_apart() -> None:
    """A namesake paper from three years earlier is not the one the page lists."""
    sought = Sought("t-1", SOUGHT.title, published=date(2025, 2, 1))
    choice = choose(sought, [record(published=date(2021, 5, 1))])
    assert choice.adopted is None
    assert "published 2021, not 2025" in choice.reason


def test_it_accepts_a_year_apart_for_a_paper_listed_after_new_year() -> None:
    """A December preprint on a January page is the same paper."""
    sought = Sought("t-1", SOUGHT.title, published=date(2025, 1, 2))
    assert choose(sought, [record(published=date(2024, 12, 30))]).adopted is not None


def test_it_refuses_the_same_title_with_another_abstract() -> None:
    """Two papers may share a short title; their abstracts tell them apart."""
    other = record(abstract="A survey of reinforcement learning for robot grasping in clutter.")
    assert choose(SOUGHT, [other]).adopted is None


def test_it_picks_the_closest_title_when_several_pass() -> None:
    """An exact title wins over one that only nearly matches."""
    exact = record("2501.00002", title=SOUGHT.title)
    assert choose(SOUGHT, [record(), exact]).adopted == exact


def test_it_adopts_nothing_when_two_papers_match_equally() -> None:
    """A tie could be either paper, and a wrong id is worse than none."""
    choice = choose(SOUGHT, [record("2501.00001"), record("2501.00009")])
    assert choice.adopted is None
    assert choice.reason == "ambiguous: 2501.00001, 2501.00009"


def test_it_ignores_entries_without_an_arxiv_id() -> None:
    """An API error entry has a title but no id, and is never adopted."""
    assert choose(SOUGHT, [record(arxiv_id=None)]).adopted is None  # type: ignore[arg-type]


def test_the_queries_use_the_titles_words_only() -> None:
    """Quotes, colons and brackets in a title cannot break the search syntax."""
    assert phrase('A "Quoted" (Title): x+y') == 'ti:"a quoted title x y"'
    assert titles_query(["One Two", "Three Four"]) == 'ti:"one two" OR ti:"three four"'
    assert words_query("Scaling Diffusion Transformers: A Noise-Schedule Study") == (
        "ti:scaling AND ti:diffusion AND ti:transformers AND ti:noise AND ti:schedule AND ti:study"
    )


def test_adoption_links_the_abstract_pdf_and_hugging_face_pages() -> None:
    """An adopted paper can be opened on arXiv and on Hugging Face."""
    links = dict(adoption(record()).links)
    assert links == {
        "hf": "https://huggingface.co/papers/2501.00001",
        "abs": "https://arxiv.org/abs/2501.00001",
        "pdf": "https://arxiv.org/pdf/2501.00001",
    }
