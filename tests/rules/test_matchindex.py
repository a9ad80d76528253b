"""Tests for the indexed matcher: same answers as the one-paper reference, for many rules."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import event, given, settings
from hypothesis import strategies as st

from digestbot.models import Paper, Rule, Subscriber
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.matching import match_paper, rank_key

NOW = datetime(2026, 11, 24, tzinfo=UTC)
VOCAB = [
    "attention",
    "attentions",
    "transformer",
    "transformers",
    "transfromer",
    "quantized",
    "quantization",
    "low",
    "bit",
    "diffusion",
    "models",
    "model",
    "self",
    "graph",
    "vision",
    "approach",
    "approaches",
    "sparse",
    "linear",
    "survey",
]
NAMES = [
    "Yann LeCun",
    "Y. LeCun",
    "Xavier LeCun",
    "Ada Lovelace",
    "A Lovelace",
    "B. Lovelace",
    "Jonas Bäckström",
    "Jonas Backstrom",
    "Li Wei",
]

text = st.lists(st.sampled_from(VOCAB), max_size=25).map(" ".join)
term = st.one_of(
    st.sampled_from(VOCAB),
    st.sampled_from(VOCAB).map(lambda w: w[:4] + "*"),
    st.tuples(st.sampled_from(VOCAB), st.sampled_from(VOCAB)).map(lambda p: f"{p[0]}-{p[1]}"),
)
terms = st.lists(term, max_size=3).map(tuple)
few_terms = st.one_of(st.just(()), st.lists(term, max_size=1).map(tuple))
# Paper categories as arXiv and other feeds write them; rule patterns in every form.
PAPER_CATEGORIES = ["cs.CL", "cs.LG", "math.AP", "hep-th", "stat.ML", "Machine Learning"]
CATEGORY_PATTERNS = ["cs.CL", "cs.lg", "cs.*", "cs", "math", "hep-th", "stat.ML", "q-bio.*"]
fields = st.sampled_from([("title", "abstract"), ("title",), ("abstract",), ("authors",)])


@st.composite
def rules(draw: st.DrawFn, depth: int = 1) -> Rule:
    topics = draw(st.lists(rules(depth - 1), max_size=2).map(tuple)) if depth else ()
    rule = Rule(
        name=draw(st.sampled_from(["a", "b", "c"])),
        any=draw(terms),
        all=draw(few_terms),
        none=draw(few_terms),
        authors=tuple(draw(st.lists(st.sampled_from(NAMES), max_size=2))),
        topics=topics,
        fields=draw(fields),
        min_upvotes=draw(st.one_of(st.none(), st.none(), st.integers(0, 5))),
        fuzzy=draw(st.one_of(st.none(), st.sampled_from([80, 90]))),
        categories=tuple(draw(st.lists(st.sampled_from(CATEGORY_PATTERNS), max_size=2))),
    )
    if not (rule.any or rule.all or rule.authors or rule.topics or rule.categories):
        rule = Rule(rule.name, any=("attention",), none=rule.none, fields=rule.fields)
    return rule


papers = st.lists(
    st.builds(
        lambda t, a, names, up, cats: Paper(
            "p", t, a, NOW, upvotes=up, authors=tuple(names), categories=tuple(cats)
        ),
        text,
        text,
        st.lists(st.sampled_from(NAMES), max_size=2),
        st.one_of(st.none(), st.integers(0, 6)),
        st.lists(st.sampled_from(PAPER_CATEGORIES), max_size=3, unique=True),
    ),
    min_size=1,
    max_size=12,
)


@settings(max_examples=300, deadline=None)
@given(
    papers=papers, subscriber_rules=st.lists(st.lists(rules(), min_size=1, max_size=3), max_size=4)
)
def test_the_index_agrees_with_the_reference_for_every_subscriber_and_paper(
    papers: list[Paper], subscriber_rules: list[list[Rule]]
) -> None:
    """For random rules and papers, the bitset matcher returns exactly the reference matches."""
    index = PaperIndex(papers)
    matcher = Matcher(index)
    for n, rule_list in enumerate(subscriber_rules):
        subscriber = Subscriber(n, f"s{n}@x.org", "", tuple(rule_list))
        found = [(p, m) for p in papers if (m := match_paper(subscriber.rules, p)) is not None]
        assert {id(p): m for p, m in matcher.matches(subscriber)} == {id(p): m for p, m in found}
        ranked = sorted(found, key=lambda pm: rank_key(*pm))
        for limit in (1, 3, 50):
            top, total = matcher.top(subscriber, index.everything, limit)
            assert total == len(found)
            assert [(id(p), m) for p, m in top] == [(id(p), m) for p, m in ranked[:limit]]
        event(f"matched {min(len(found), 4)}")


def test_identical_rules_of_different_subscribers_are_evaluated_once() -> None:
    """The rule cache is keyed by the rule itself, so a shared rule costs one evaluation."""
    matcher = Matcher(PaperIndex([Paper("p", "Sparse attention", "", NOW)]))
    rule = Rule("r", any=("sparse attention",))
    for n in range(100):
        matcher.matches(Subscriber(n, f"s{n}@x.org", "", (rule,)))
    assert matcher.rules_evaluated == 1
