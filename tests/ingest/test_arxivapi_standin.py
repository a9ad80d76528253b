"""The loopback arXiv API stand-in: its search, its two Atom shapes as parse_feed reads them,
its switchable faults and its record of requests; and the corpus's ground truth."""

from __future__ import annotations

import threading
import time
from datetime import date
from typing import Any

import httpx
import pytest
from arxivapi import ArxivApi, load_corpus
from rapidfuzz import fuzz

from digestbot.errors import ListingError
from digestbot.ingest.feeds import parse_feed
from digestbot.ingest.textnorm import normalise_title

ENTRY = {
    "id": "2501.04821",
    "version": 2,
    "title": "Speculative Decoding Meets Quantization: Error Compounding in Low-Bit\n"
    "  Draft Models",
    "abstract": "Speculative decoding accelerates generation & verification in parallel.",
    "authors": ["Farah Haddad", "Jonas Weiß"],
    "categories": ["cs.CL", "cs.LG"],
    "published": "2025-01-08T16:42:11Z",
}
OLDER = {**ENTRY, "id": "2101.00001", "title": "Speculative Decoding Revisited", "version": 1}


def query(api: ArxivApi, timeout: float = 5.0, **params: Any) -> httpx.Response:
    return httpx.get(f"{api.base_url}/api/query", params=params, timeout=timeout)


def ids(response: httpx.Response) -> list[str | None]:
    return [p.arxiv_id for p in parse_feed(response.content, source="api").listing.papers]


@pytest.mark.parametrize("shape", ["current", "legacy"])
def test_parse_feed_reads_every_field_of_both_atom_shapes(shape: str) -> None:
    """parse_feed gets id, authors, categories (primary first), date, abstract and links from
    a page in the current shape and in the legacy one."""
    with ArxivApi([ENTRY], shape=shape) as api:
        page = parse_feed(query(api, id_list="2501.04821").content, source="api")
    (paper,) = page.listing.papers
    assert paper.arxiv_id == "2501.04821"
    assert paper.title == "Speculative Decoding Meets Quantization: Error Compounding in " + (
        "Low-Bit Draft Models"
    )
    assert paper.authors == ("Farah Haddad", "Jonas Weiß")
    assert paper.categories == ("cs.CL", "cs.LG")
    assert paper.published == date(2025, 1, 8)
    assert paper.abstract == ENTRY["abstract"]
    links = dict(paper.links)
    assert links["abs"] == "https://arxiv.org/abs/2501.04821"
    assert links["pdf"].endswith("/pdf/2501.04821v2")
    assert (page.total, page.start, page.per_page) == (1, 0, 10)


@pytest.mark.parametrize("shape", ["current", "legacy"])
def test_parse_feed_keeps_angle_brackets_of_an_abstract(shape: str) -> None:
    """An abstract's literal `<`...`>` (escaped in the XML) survives parsing."""
    entry = {**ENTRY, "abstract": "Bounds for k <n> and a < b, in & out."}
    with ArxivApi([entry], shape=shape) as api:
        page = parse_feed(query(api, id_list="2501.04821").content, source="api")
    assert page.listing.papers[0].abstract == entry["abstract"]


def test_a_phrase_matches_only_contiguous_words_and_an_exact_title_comes_first() -> None:
    """ti:"..." matches contiguous words, accents and case folded; the whole-title match leads."""
    with ArxivApi([OLDER, ENTRY]) as api:
        assert ids(query(api, search_query='ti:"speculative decoding"')) == [
            "2501.04821",
            "2101.00001",
        ]
        assert ids(query(api, search_query='ti:"decoding speculative"')) == []
        exact = query(api, search_query='ti:"Speculative Decoding Revisited" OR ti:decoding')
        assert ids(exact) == ["2101.00001", "2501.04821"]
        assert ids(query(api, search_query="au:weiss AND cat:cs.*")) == ["2501.04821", "2101.00001"]


def test_an_or_batch_of_titles_finds_each_listing_paper_but_no_withheld_one() -> None:
    """An OR of title phrases answers each paper of the batch; withheld entries stay hidden
    unless the server is told otherwise."""
    corpus = load_corpus()
    shown = [e for e in corpus if not e["decoy"] and not e["withhold"]][:3]
    hidden = next(e for e in corpus if e["withhold"])
    batch = " OR ".join(f'ti:"{e["listing_title"]}"' for e in [*shown, hidden])
    with ArxivApi(corpus) as api:
        found = ids(query(api, search_query=batch, max_results=50))
    assert {e["id"] for e in shown} <= set(found)
    assert hidden["id"] not in found
    with ArxivApi(corpus, withhold=False) as api:
        assert hidden["id"] in ids(query(api, search_query=batch, max_results=50))


def test_id_list_takes_ids_with_or_without_version_in_the_order_given() -> None:
    """id_list answers the listed ids in order, a version suffix ignored, unknown ids dropped."""
    with ArxivApi([OLDER, ENTRY]) as api:
        assert ids(query(api, id_list="2501.04821v2,2101.00001,2201.99999")) == [
            "2501.04821",
            "2101.00001",
        ]


def test_paging_follows_start_and_max_results_with_opensearch_figures() -> None:
    """start/max_results cut the results; totalResults counts them all."""
    entries = [{**ENTRY, "id": f"2501.0{n:04d}", "title": f"Paper {n}"} for n in range(5)]
    with ArxivApi(entries) as api:
        page = parse_feed(query(api, search_query="ti:paper", start=3, max_results=3).content,
                          source="api")  # fmt: skip
    assert [p.arxiv_id for p in page.listing.papers] == ["2501.00001", "2501.00000"]
    assert (page.total, page.start, page.per_page) == (5, 3, 3)


def test_fail_answers_the_next_requests_with_the_status_and_retry_after() -> None:
    """fail(2) gives two 503s with Retry-After, then normal answers again."""
    with ArxivApi([ENTRY]) as api:
        api.fail(2, retry_after="7")
        first, second, third = (query(api, id_list="2501.04821") for _ in range(3))
    assert [first.status_code, second.status_code, third.status_code] == [503, 503, 200]
    assert first.headers["Retry-After"] == "7"
    assert [r.status for r in api.requests] == [503, 503, 200]


def test_slow_delays_past_a_client_timeout_then_answers_promptly() -> None:
    """slow(word) makes a matching query outlast a short client timeout; others stay quick."""
    with ArxivApi([ENTRY]) as api:
        api.slow(1.0, word="quantization")
        with pytest.raises(httpx.TimeoutException):
            query(api, timeout=0.3, search_query="ti:quantization")
        assert query(api, timeout=0.5, search_query="ti:draft").status_code == 200
        api.slow(0.4)
        answered = query(api, search_query="ti:draft")
    assert answered.elapsed.total_seconds() >= 0.4


def test_malformed_and_blank_answers_are_refused_by_parse_feed() -> None:
    """malformed() cuts the next document off, blank() sends an empty 200; parse_feed refuses
    both."""
    with ArxivApi([ENTRY]) as api:
        api.malformed()
        api.blank()
        cut, empty = query(api, id_list="2501.04821"), query(api, id_list="2501.04821")
    assert cut.status_code == 200 and not cut.content.rstrip().endswith(b"</feed>")
    assert empty.status_code == 200 and empty.content == b""
    for response in (cut, empty):
        with pytest.raises(ListingError):
            parse_feed(response.content, source="api")


def test_the_record_has_arrival_times_and_how_many_requests_were_in_flight() -> None:
    """Each request is recorded with its arrival on the server's clock and the in-flight count."""
    with ArxivApi([ENTRY]) as api:
        query(api, id_list="2501.04821")
        query(api, id_list="2501.04821")
        assert api.max_in_flight == 1
        api.slow(0.5)
        slow = threading.Thread(target=query, args=(api,), kwargs={"id_list": "2501.04821"})
        slow.start()
        while len(api.requests) < 3:
            time.sleep(0.01)  # until the slow request has arrived
        query(api, id_list="2501.04821")
        slow.join()
    assert api.max_in_flight == 2
    assert all(gap >= 0 for gap in api.intervals())
    assert api.requests[0].params == {"id_list": "2501.04821"}
    assert api.requests[0].finished >= api.requests[0].arrived


def test_the_corpus_keeps_true_titles_close_and_near_misses_below_the_bar() -> None:
    """Every true entry's title stays at ratio >= 97 of its listing title; every near-miss decoy
    lies in [88, 95); same-title decoys are 3+ years older with another first author."""

    def ratio(a: str, b: str) -> float:
        return float(fuzz.ratio(normalise_title(a), normalise_title(b)))

    corpus = load_corpus()
    true = {e["id"]: e for e in corpus if not e["decoy"]}
    assert len(true) > 340
    for entry in corpus:
        score = ratio(entry["title"], entry["listing_title"])
        if not entry["decoy"]:
            assert score >= 97, entry["title"]
        elif entry["variation"] == "near_miss":
            assert 88 <= score < 95, entry["title"]
        else:
            original = true[entry["decoy_of"]]
            assert entry["title"] == entry["listing_title"]
            assert int(original["published"][:4]) - int(entry["published"][:4]) >= 3
            assert entry["authors"][0].split()[-1] != original["authors"][0].split()[-1]


def test_the_fixture_serves_a_listing_paper_beside_its_same_title_decoy(
    arxiv_api: ArxivApi,
) -> None:
    """Searching a listing title that has a same-title decoy answers both papers."""
    decoy = next(e for e in load_corpus() if e.get("variation") == "same_title")
    found = ids(query(arxiv_api, search_query=f'ti:"{decoy["listing_title"]}"'))
    assert {decoy["decoy_of"], decoy["id"]} <= set(found)
