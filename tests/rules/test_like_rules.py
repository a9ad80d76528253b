"""Tests for `like:` rule conditions: the language, seeds resolved on sync, and matching in
the reference evaluator and the fast matcher alike."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from conftest import LISTING_000
from sqlalchemy import Engine

from digestbot.errors import SubscriptionsError
from digestbot.ingest.load import ingest_path
from digestbot.ingest.papers import papers_seen_since
from digestbot.models import Paper, Rule, Seed, Subscriber
from digestbot.rules.likeindex import LikeIndex
from digestbot.rules.likestore import SeedBook, corpus_model
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.matching import match_paper
from digestbot.rules.subscribers import (
    active_subscribers,
    rule_from_json,
    rule_to_json,
    sync_subscriptions,
)
from digestbot.rules.subscriptions import parse_subscriptions

RAE = "Diffusion Transformers with Representation Autoencoders"


def rules_of(body: str, **options: object) -> tuple[Rule, ...]:
    text = f"subscribers:\n  - email: r@lab.example\n    rules:\n      - {body}\n"
    spec = parse_subscriptions(text, source="subs.yaml", **options)  # type: ignore[arg-type]
    return spec.rules_of(spec.subscribers[0])


def problems(body: str, **options: object) -> list[str]:
    with pytest.raises(SubscriptionsError) as caught:
        rules_of(body, **options)
    return caught.value.problems


def stored_papers(engine: Engine, clock: datetime) -> list[Paper]:
    ingest_path(engine, LISTING_000, now=clock)
    return papers_seen_since(engine, None)


def test_like_is_a_condition_of_its_own_with_a_threshold_or_a_count() -> None:
    """`like:` alone makes a rule; `min_similarity` or `top` go with it."""
    (rule,) = rules_of('{name: L, like: ["sparse attention", "2306.01841"], top: 5}')
    assert rule.like == (
        Seed("sparse attention", "sparse attention"),
        Seed("2306.01841", "2306.01841"),
    )
    assert (rule.top, rule.min_similarity) == (5, None)
    (rule,) = rules_of("{like: [graph neural networks], min_similarity: 0.3}")
    assert rule.min_similarity == 0.3 and rule.name == "like graph neural networks"


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("{any: [x], min_similarity: 0.3}", "`min_similarity` and `top` go with `like`"),
        ("{like: [x], min_similarity: 0.3, top: 3}", "give `min_similarity` or `top`, not both"),
        ("{like: [x], min_similarity: 1.5}", "min_similarity: Input should be less than"),
        ("{like: [x], top: 0}", "top: Input should be greater than or equal to 1"),
        ('{like: ["  "]}', "a `like` seed is empty"),
    ],
)
def test_like_options_are_checked_at_their_line(body: str, message: str) -> None:
    """Each misuse is one located error naming what is wrong."""
    (problem,) = problems(body)
    assert problem.startswith("subs.yaml:4:") and message in problem


def test_an_arxiv_id_no_stored_paper_has_is_an_error_at_its_line(
    engine: Engine, clock: datetime
) -> None:
    """With the stored papers to check against, an unknown id is located; a stored
    paper's title and any text pass."""
    stored_papers(engine, clock)
    book = SeedBook(engine)
    body = f'{{like: ["{RAE}", "some free text", "2306.99999"]}}'
    (problem,) = problems(body, check_seed=book.problem)
    assert problem.startswith("subs.yaml:4:")
    assert "subscribers[0].rules[0].like[2]: arXiv id 2306.99999 is not a stored paper" in problem


def test_sync_stores_a_stored_papers_seed_with_its_title_and_abstract(
    engine: Engine, clock: datetime
) -> None:
    """A seed naming a stored paper (by title) is compared by its text; a description is
    compared as written; the stored rule reads back the same."""
    stored_papers(engine, clock)
    text = (
        "subscribers:\n  - email: r@lab.example\n    rules:\n"
        f'      - {{name: L, like: ["{RAE}", "graph neural networks"]}}\n'
    )
    sync_subscriptions(engine, parse_subscriptions(text, source="s"), now=clock)
    (subscriber,) = active_subscribers(engine)
    (rule,) = subscriber.rules
    paper, words = rule.like
    assert paper.label == RAE and paper.text.startswith(RAE + "\n") and len(paper.text) > 500
    assert words == Seed("graph neural networks", "graph neural networks")
    assert rule_from_json(rule_to_json(rule)) == rule


def test_a_rule_without_like_is_stored_as_before() -> None:
    """Rules with no seeds keep their stored JSON: a sync does not rewrite every rule."""
    (rule,) = rules_of("{any: [diffusion]}")
    assert not {"like", "min_similarity", "top"} & set(rule_to_json(rule))


def both(rules: tuple[Rule, ...], papers: list[Paper]) -> dict[str, tuple[float, tuple[str, ...]]]:
    """Each paper's (score, like reasons) from the reference, after checking that the fast
    matcher gives the same matches."""
    index = PaperIndex(papers)
    reference = {}
    for paper in index.papers:
        match = match_paper(rules, paper, index.likes)
        if match is not None:
            reference[paper.id] = (match.score, match.similar, match.terms, match.rules)
    subscriber = Subscriber(1, "r@lab.example", "", rules)
    fast = {
        p.id: (m.score, m.similar, m.terms, m.rules) for p, m in Matcher(index).matches(subscriber)
    }
    assert fast == reference
    ranked, total = Matcher(index).top(subscriber, index.everything, 5)
    assert total == len(reference)
    assert [m.score for _, m in ranked] == sorted(
        (s for s, *_ in reference.values()), reverse=True
    )[:5]
    return {pid: (score, similar) for pid, (score, similar, *_) in reference.items()}


def test_both_evaluators_agree_on_like_rules_and_rank_by_similarity(
    engine: Engine, clock: datetime
) -> None:
    """Thresholds, counts, topics and `none` give the same papers, reasons and scores in
    both; a like-only rule ranks its papers by their cosine to the nearest seed."""
    papers = stored_papers(engine, clock)
    seed = Seed("image generation", "diffusion image generation with transformers")
    other = Seed("graphs", "graph neural networks and message passing")
    for rule in (
        Rule("threshold", like=(seed, other), min_similarity=0.1),
        Rule("count", like=(seed,), top=4),
        Rule("with none", like=(seed,), none=("survey",), min_similarity=0.05),
        Rule("topic", topics=(Rule("t", like=(other,), top=3),), any=("graph",)),
        Rule("default", like=(seed,)),
    ):
        found = both((rule, Rule("kw", any=("transformer",))), papers)
        assert found, rule.name
    count = both((Rule("count", like=(seed,), top=4),), papers)
    assert len(count) == 4
    assert all(reasons[0].startswith("like: image generation (0.") for _, reasons in count.values())
    scores = sorted((score for score, _ in count.values()), reverse=True)
    cosines = sorted(
        (float(r[0].split("(")[1].rstrip(")")) for _, r in count.values()), reverse=True
    )
    assert all(abs(s / 10 - c) <= 0.005 for s, c in zip(scores, cosines, strict=True))


def test_a_threshold_keeps_only_papers_alike_enough() -> None:
    """min_similarity is a cosine floor: a near-copy passes, an unrelated paper does not."""
    now = datetime(2026, 11, 24, tzinfo=UTC)
    papers = [
        Paper(
            "a", "Graph neural networks for molecules", "Message passing on molecular graphs.", now
        ),
        Paper("b", "Speech recognition in noise", "Robust audio transcription.", now),
    ]
    likes = LikeIndex(papers)
    rule = Rule("r", like=(Seed("g", "graph neural networks message passing"),), min_similarity=0.2)
    assert likes.mask(rule) == 0b01
    assert likes.mask(Rule("r", like=rule.like, top=2)) == 0b01  # top keeps only cosines > 0


def test_the_model_is_fitted_again_only_once_the_store_has_grown_enough(
    engine: Engine, clock: datetime
) -> None:
    """The same model serves while the papers grow by less than the share; more papers, or
    another database at the same place with fewer, get a new one."""
    stored_papers(engine, clock)
    first = corpus_model(engine, refit_share=0.1)
    assert corpus_model(engine, refit_share=0.1) is first
    assert first.size == 39
    ingest_path(engine, LISTING_000.with_name("001_da432fa98501e883.txt"), now=clock)
    assert corpus_model(engine, refit_share=10.0) is first
    grown = corpus_model(engine, refit_share=0.1)
    assert grown is not first and grown.size > 39
