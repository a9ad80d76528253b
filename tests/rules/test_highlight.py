"""Tests for highlighting: where a subscriber's terms occur in an abstract."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from digestbot.rules.highlight import find_terms, token_spans, tokenised
from digestbot.rules.matching import parse_term, word_matches


def marked(text: str, terms: tuple[str, ...], fuzzy: int | None = None) -> list[str]:
    return [text[s:e] for s, e in find_terms(text, terms, dict.fromkeys(terms, fuzzy))]


def test_it_finds_terms_by_the_matching_rules() -> None:
    """Case-insensitive words, plurals, prefixes, phrases across punctuation, never inside
    another word."""
    text = "Quantized LLMs: Self-Attention and flash attention for transformers (Attention!)"
    assert marked(text, ("quantiz*",)) == ["Quantized"]
    assert marked(text, ("llm",)) == ["LLMs"]
    assert marked(text, ("self attention",)) == ["Self-Attention"]
    assert marked(text, ("transformer",)) == ["transformers"]
    assert marked(text, ("flash attention", "attention")) == [
        "Attention",
        "flash attention",
        "Attention",
    ]
    assert marked("retransformers", ("transformer",)) == []


def test_it_finds_non_ascii_and_fuzzy_terms() -> None:
    """Accented and case-folded words are found; fuzzy rules highlight their near misses."""
    assert marked("The Schrödinger ÉQUATION", ("schrödinger", "équation")) == [
        "Schrödinger",
        "ÉQUATION",
    ]
    assert marked("a transfromer model", ("transformer",)) == []
    assert marked("a transfromer model", ("transformer",), fuzzy=85) == ["transfromer"]


@settings(max_examples=200, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["Attention", "attentions", "flash", "Flash-", "LLMs", "quantized", "x_y"])
        | st.sampled_from([" ", "-", ", ", "_", "(", ")"]),
        max_size=30,
    ).map("".join),
    term=st.sampled_from(["attention", "flash attention", "quantiz*", "llm", "flash atten*"]),
)
def test_the_fast_search_finds_what_the_word_by_word_search_finds(text: str, term: str) -> None:
    """The regular-expression search for ASCII text agrees with the word-by-word matching
    (forced here by an exact-only fuzzy level of 100)."""
    assert find_terms(text, (term,), {}) == find_terms(text, (term,), {term: 100})


@settings(max_examples=300, deadline=None)
@given(
    text=st.lists(
        st.sampled_from(["transformer", "transfromers", "Tranformer", "attention", "atention"])
        | st.sampled_from(["models", "modles", "mode", "é", " ", "-", ", "]),
        max_size=30,
    ).map("".join),
    term=st.sampled_from(["transformer", "attention models", "transf*", "model", "é"]),
    level=st.sampled_from([None, 70, 85, 100]),
)
def test_word_by_word_search_agrees_with_the_matching_rule_per_token(
    text: str, term: str, level: int | None
) -> None:
    """Scoring distinct words at once finds exactly the ranges `word_matches` accepts token by
    token (the straightforward definition)."""

    found = tokenised(text)
    tokens = found[0]
    parsed = parse_term(term)
    n, last = len(parsed.words), len(parsed.words) - 1
    expected = [
        (tokens[i][0], tokens[i + last][1])
        for i in range(len(tokens) - n + 1 if n else 0)
        if all(
            word_matches(w, tokens[i + k][2], prefix=parsed.prefix and k == last, fuzzy=level)
            for k, w in enumerate(parsed.words)
        )
    ]
    assert token_spans(found, term, level) == expected
