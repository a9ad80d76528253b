"""Tests for the pure matcher: any / all / none on whole words and phrases."""

from __future__ import annotations

from datetime import UTC, datetime

from digestbot.matching import match_paper
from digestbot.models import Paper, Rule

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def paper(title: str, abstract: str = "", upvotes: int | None = None) -> Paper:
    return Paper(id="p", title=title, abstract=abstract, first_seen=NOW, upvotes=upvotes)


def test_any_matches_when_one_term_occurs() -> None:
    """One of the `any` terms is enough."""
    match = match_paper([Rule("r", any=("diffusion", "gan"))], paper("Latent Diffusion Models"))
    assert match is not None
    assert match.terms == ("diffusion",)
    assert match.rules == ("r",)


def test_matching_ignores_case_and_punctuation() -> None:
    """'self-attention' matches 'Self Attention' and 'SELF-ATTENTION'."""
    rule = [Rule("r", any=("self-attention",))]
    assert match_paper(rule, paper("Why Self Attention works"))
    assert match_paper(rule, paper("x", "We study SELF-ATTENTION."))


def test_terms_match_whole_words_only() -> None:
    """'gan' does not match inside 'organ' and 'transformer' not inside 'transformers'' prefix."""
    assert match_paper([Rule("r", any=("gan",))], paper("Organ segmentation")) is None
    assert match_paper([Rule("r", any=("former",))], paper("Transformer models")) is None


def test_a_phrase_matches_only_contiguous_words() -> None:
    """'linear attention' needs the two words side by side."""
    rule = [Rule("r", any=("linear attention",))]
    assert match_paper(rule, paper("Gated linear attention"))
    assert match_paper(rule, paper("Linear probes for attention heads")) is None


def test_all_needs_every_term() -> None:
    """Every `all` term must occur, in the title or the abstract."""
    rule = [Rule("r", all=("transformer", "video"))]
    assert match_paper(rule, paper("Video transformer"))
    assert match_paper(rule, paper("Transformer", "applied to video"))
    assert match_paper(rule, paper("Transformer for images")) is None


def test_none_vetoes_a_match() -> None:
    """A `none` term anywhere stops the rule from matching."""
    rule = [Rule("r", any=("attention",), none=("survey",))]
    assert match_paper(rule, paper("Attention: a survey")) is None
    assert match_paper(rule, paper("Attention sinks"))


def test_a_paper_matches_when_any_rule_does() -> None:
    """Rules are alternatives; the match names each rule that matched."""
    rules = [Rule("a", any=("video",)), Rule("b", any=("audio",)), Rule("c", any=("speech",))]
    match = match_paper(rules, paper("Audio-video generation"))
    assert match is not None
    assert match.rules == ("a", "b")
    assert match.terms == ("video", "audio")


def test_title_hits_score_higher_than_abstract_hits() -> None:
    """The same term counts more in the title than in the abstract."""
    rule = [Rule("r", any=("diffusion",))]
    in_title = match_paper(rule, paper("Diffusion models"))
    in_abstract = match_paper(rule, paper("Generative models", "We use diffusion."))
    assert in_title and in_abstract
    assert in_title.score > in_abstract.score
    assert in_title.title_terms == ("diffusion",)
