"""Tests for the pure matcher: any / all / none on whole words and phrases."""

from __future__ import annotations

from datetime import UTC, datetime

from digestbot.models import Paper, Rule
from digestbot.rules.matching import match_paper

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


def by(*names: str, title: str = "T", upvotes: int | None = None) -> Paper:
    return Paper(id="p", title=title, abstract="", first_seen=NOW, authors=names, upvotes=upvotes)


def test_terms_are_nfkc_normalised_and_case_folded() -> None:
    """A ligature, full-width letters and case all normalise away."""
    rule = [Rule("r", any=("fine-tuning",))]
    assert match_paper(rule, paper("Eﬃcient ﬁne-tuning"))
    assert match_paper(rule, paper("\uff26\uff29\uff2e\uff25 TUNING at scale"))  # full-width


def test_a_word_matches_its_plural_with_s_or_es_and_nothing_else() -> None:
    """transformer ~ transformers, approach ~ approaches; no other stemming."""
    assert match_paper([Rule("r", any=("transformer",))], paper("Vision Transformers"))
    assert match_paper([Rule("r", any=("approach",))], paper("Three approaches"))
    assert match_paper([Rule("r", any=("model",))], paper("Modeling language")) is None
    assert match_paper([Rule("r", any=("models",))], paper("A language model")) is None


def test_a_trailing_star_makes_a_prefix() -> None:
    """quantiz* matches quantized and quantization, only at a word start."""
    rule = [Rule("r", any=("quantiz*",))]
    assert match_paper(rule, paper("Quantized LLMs"))
    assert match_paper(rule, paper("x", "post-training quantization"))
    assert match_paper(rule, paper("Dequantized weights")) is None


def test_a_prefix_ends_a_phrase() -> None:
    """'low-bit quant*' needs 'low bit' followed by a word starting with quant."""
    rule = [Rule("r", any=("low-bit quant*",))]
    assert match_paper(rule, paper("Low-bit quantisation"))
    assert match_paper(rule, paper("Low-bit training for quantum")) is None


def test_fuzzy_tolerates_typos_in_long_words_only() -> None:
    """fuzzy: 85 accepts 'transfromer' for 'transformer'; short words stay exact."""
    assert match_paper([Rule("r", any=("transformer",))], paper("Transfromer nets")) is None
    assert match_paper([Rule("r", any=("transformer",), fuzzy=85)], paper("Transfromer nets"))
    assert match_paper([Rule("r", any=("gpt",), fuzzy=50)], paper("GPU kernels")) is None


def test_fields_limit_where_terms_are_looked_for() -> None:
    """fields: [title] ignores the abstract; fields: [authors] searches author names."""
    title_only = [Rule("r", any=("diffusion",), fields=("title",))]
    assert match_paper(title_only, paper("Generative models", "We use diffusion.")) is None
    assert match_paper(title_only, paper("Diffusion models"))
    in_authors = [Rule("r", any=("hinton",), fields=("authors",))]
    assert match_paper(in_authors, by("Geoffrey Hinton"))


def test_authors_tolerate_initials_accents_and_case() -> None:
    """'Y. LeCun' is 'Yann LeCun'; 'Jonas Backstrom' is 'Jonas Bäckström'."""
    assert match_paper([Rule("r", authors=("Y. LeCun",))], by("A. Author", "Yann LeCun"))
    assert match_paper([Rule("r", authors=("yann lecun",))], by("Y. LeCun"))
    assert match_paper([Rule("r", authors=("Jonas Backstrom",))], by("Jonas Bäckström"))
    assert match_paper([Rule("r", authors=("Y. LeCun",))], by("Xavier LeCun")) is None
    assert match_paper([Rule("r", authors=("Yann LeCun",))], by("Yann Dauphin")) is None


def test_topics_match_when_one_named_topic_does() -> None:
    """A rule's topics are alternatives, each a full rule body."""
    attention = Rule("efficient-attention", any=("linear attention",), none=("survey",))
    rule = [Rule("r", topics=(attention, Rule("ssm", any=("mamba",))))]
    assert match_paper(rule, paper("Linear attention at scale"))
    assert match_paper(rule, paper("Mamba for vision"))
    assert match_paper(rule, paper("Linear attention: a survey")) is None


def test_min_upvotes_is_a_condition_like_the_others() -> None:
    """Fewer upvotes than min_upvotes (or none known) fails the rule."""
    rule = [Rule("r", any=("t",), min_upvotes=3)]
    assert match_paper(rule, by(title="T", upvotes=3))
    assert match_paper(rule, by(title="T", upvotes=2)) is None
    assert match_paper(rule, by(title="T")) is None


def test_every_stated_condition_must_hold() -> None:
    """topics, all and authors together: each one is required."""
    topic = Rule("attn", any=("attention",))
    rule = [Rule("r", topics=(topic,), all=("transformer",), authors=("A. Vaswani",))]
    both = Paper("p", "Attention transformer", "", NOW, authors=("Ashish Vaswani",))
    assert match_paper(rule, both)
    assert match_paper(rule, Paper("p", "Attention transformer", "", NOW)) is None
    assert match_paper(rule, Paper("p", "Attention", "", NOW, authors=("A. Vaswani",))) is None


def test_the_match_records_rules_terms_and_title_terms() -> None:
    """The match lists each matching rule by name and the positive terms found."""
    rules = [
        Rule("Attention", any=("attention", "recurrence"), none=("survey",)),
        Rule("People", authors=("Y. LeCun",)),
    ]
    match = match_paper(
        rules, Paper("p", "Attention", "and recurrence", NOW, authors=("Yann LeCun",))
    )
    assert match is not None
    assert match.rules == ("Attention", "People")
    assert match.terms == ("attention", "recurrence", "Y. LeCun")
    assert match.title_terms == ("attention", "Y. LeCun")


def test_one_title_hit_outranks_several_abstract_hits() -> None:
    """Score: ten per title hit, one per distinct term."""
    rule = [Rule("r", any=("a1", "a2", "a3", "t1"))]
    title = match_paper(rule, paper("t1 paper"))
    abstract = match_paper(rule, paper("x", "a1 a2 a3"))
    assert title and abstract
    assert title.score > abstract.score
