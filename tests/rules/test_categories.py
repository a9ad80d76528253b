"""Tests for category rules: checked as written, matched alike by the reference and the index."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digestbot.errors import SubscriptionsError
from digestbot.models import Match, Paper, Rule, Subscriber
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.matching import match_paper
from digestbot.rules.subscribers import rule_from_json, rule_to_json
from digestbot.rules.subscriptions import parse_subscriptions

NOW = datetime(2026, 11, 24, tzinfo=UTC)
FILE = """\
topics:
  nlp:
    categories: [cs.CL]
subscribers:
  - email: a@example.org
    rules:
      - categories: [cs.CL, hep-th, math.*, physics.comp-ph, cond-mat.mes-hall]
        min_upvotes: 2
      - topics: [nlp]
        any: [attention]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SubscriptionsError) as caught:
        parse_subscriptions(text, source="subs.yaml")
    return caught.value.problems


def both(rules: tuple[Rule, ...], paper: Paper) -> Match | None:
    """The reference's answer, after checking the index gives the same one."""
    reference = match_paper(rules, paper)
    found = Matcher(PaperIndex([paper])).matches(Subscriber(1, "a@x.org", "", rules))
    assert found == ([(paper, reference)] if reference else [])
    return reference


def paper(*categories: str, upvotes: int | None = None, title: str = "A study") -> Paper:
    return Paper("p", title, "", NOW, upvotes=upvotes, categories=categories)


def test_categories_are_a_rule_and_topic_condition_kept_as_written() -> None:
    """A rule or topic may list categories alone or with other conditions."""
    spec = parse_subscriptions(FILE, source="subs.yaml")
    first, second = spec.rules_of(spec.subscribers[0])
    assert first.categories == ("cs.CL", "hep-th", "math.*", "physics.comp-ph", "cond-mat.mes-hall")
    assert first.name == "cs.CL, hep-th, math.*"
    assert second.topics[0].categories == ("cs.CL",)


@pytest.mark.parametrize(
    ("written", "message"),
    [
        ("cs.C L", "'cs.C L' is not an arXiv category"),
        ("cs.", "'cs.' is not an arXiv category"),
        ("cs.CL.x", "'cs.CL.x' is not an arXiv category"),
        ("cs*", "'cs*' is not an arXiv category"),
        ("compsci.CL", "unknown arXiv archive 'compsci'"),
        ("hep.th", "unknown arXiv archive 'hep'"),
    ],
)
def test_a_malformed_category_or_unknown_archive_is_an_error_at_its_line(
    written: str, message: str
) -> None:
    """Each bad category is reported at its own line and column, naming what is wrong."""
    (problem,) = problems(FILE.replace("hep-th,", f'"{written}",'))
    assert problem.startswith(f"subs.yaml:7:29: subscribers[0].rules[0].categories[1]: {message}")


def test_a_bad_category_in_a_topic_is_located_too() -> None:
    """Topics are checked like rules."""
    (problem,) = problems(FILE.replace("[cs.CL]", "[cs.CL, biology]"))
    assert problem.startswith("subs.yaml:3:25: topics.nlp.categories[1]: unknown arXiv archive")


def test_a_rule_with_only_categories_has_a_positive_condition() -> None:
    """`categories` alone is enough for a rule; `none` alone still is not."""
    (problem,) = problems(FILE.replace("categories: [cs.CL]\n", "none: [x]\n"))
    assert "needs a positive condition: `any`, `all`, `authors`, `categories`" in problem


def test_a_category_matches_exactly_and_an_archive_matches_all_its_categories() -> None:
    """cs.CL is one category; cs.* and cs take every cs category, and no other archive's."""
    assert both((Rule("r", categories=("cs.CL",)),), paper("cs.CL", "cs.LG"))
    assert not both((Rule("r", categories=("cs.CL",)),), paper("cs.LG"))
    assert both((Rule("r", categories=("cs.*",)),), paper("stat.ML", "cs.LG"))
    assert both((Rule("r", categories=("cs",)),), paper("cs.LG"))
    assert not both((Rule("r", categories=("cs.*",)),), paper("stat.ML", "eess.AS"))
    assert not both((Rule("r", categories=("math",)),), paper("math-ph"))
    assert both((Rule("r", categories=("hep-th",)),), paper("hep-th"))


def test_category_comparison_ignores_case() -> None:
    """cs.cl in a rule is arXiv's cs.CL."""
    assert both((Rule("r", categories=("cs.cl",)),), paper("cs.CL"))


def test_a_paper_without_categories_never_matches_a_category_condition() -> None:
    """Unknown categories are no category at all, whatever else the rule accepts."""
    rule = Rule("r", any=("study",), categories=("cs.*",))
    assert both((rule,), paper(title="A study")) is None
    assert both((rule,), paper("cs.CL", title="A study"))


def test_categories_combine_with_the_other_conditions() -> None:
    """Every condition must hold: the category and min_upvotes, the category and terms."""
    rule = Rule("r", categories=("cs.CL",), min_upvotes=3)
    assert both((rule,), paper("cs.CL", upvotes=5))
    assert not both((rule,), paper("cs.CL", upvotes=1))
    assert not both((rule,), paper("cs.LG", upvotes=5))
    topic = Rule("nlp", categories=("cs.CL",))
    rule = Rule("r", any=("study",), topics=(topic,), none=("survey",))
    assert both((rule,), paper("cs.CL", title="A study"))
    assert not both((rule,), paper("cs.CL", title="A study and survey"))


def test_the_match_names_the_papers_categories_that_matched() -> None:
    """The explanation lists the paper's own categories the patterns accepted, sorted."""
    rule = Rule("r", any=("study",), categories=("cs.*", "hep-th"))
    match = both((rule,), paper("hep-th", "cs.LG", "cs.CL", "math.AP", title="A study"))
    assert match is not None
    assert match.terms == ("study", "cs.CL", "cs.LG", "hep-th")
    assert match.title_terms == ("study",)


def test_stored_rules_keep_their_categories_and_older_ones_load_without() -> None:
    """Categories survive the JSON round trip; a rule stored without the key has none."""
    topic = Rule("t", categories=("cs.*",))
    rule = Rule("r", any=("x",), topics=(topic,), categories=("cs.CL",))
    assert rule_from_json(rule_to_json(rule)) == rule
    plain = rule_to_json(Rule("r", any=("x",), topics=(Rule("t", any=("y",)),)))
    assert "categories" not in plain and "categories" not in plain["topics"][0]
    assert rule_from_json(plain).categories == ()


def test_an_archive_written_in_capitals_is_accepted_as_arxiv_writes_it() -> None:
    """`CS.CL` is kept as cs.CL, since matching ignores case anyway (it was refused while
    `cs.cl` passed)."""
    spec = parse_subscriptions(FILE.replace("hep-th,", "CS.LG, Math,"), source="subs.yaml")
    first, _ = spec.rules_of(spec.subscribers[0])
    assert first.categories[:3] == ("cs.CL", "cs.LG", "math")
