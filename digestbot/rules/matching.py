"""Rules stage (pure): the rule language's semantics, evaluated one paper at a time.

Terms are NFKC-normalised and case-folded, and any non-alphanumeric character separates
words. A term matches a contiguous run of words in the chosen fields; each term word also
matches its plural with a trailing "s" or "es"; a trailing `*` makes the last word a prefix;
`fuzzy: N` also accepts words of five or more letters at rapidfuzz ratio >= N.
This module is the reference; `matchindex` computes the same answers for many subscribers.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import lru_cache

from rapidfuzz import fuzz

from digestbot.ingest.textnorm import words
from digestbot.models import Match, Paper, Rule
from digestbot.rules.categories import category_matches, matching_categories
from digestbot.rules.likeindex import LikeIndex, like_reasons, like_scopes

FUZZY_MIN_LENGTH = 5
AUTHOR_SEPARATOR = "\x00"  # between authors in the authors field, so phrases never span two


@dataclass(frozen=True)
class Term:
    """A parsed term: its words, and whether the last one is a prefix."""

    raw: str
    words: tuple[str, ...]
    prefix: bool


# One entry: a term as written and parsed, ~0.3 KiB. Every subscriber's terms are parsed for
# each plan; 1,000 generated subscribers had 440 distinct ones, so 8192 (~2.4 MiB) holds
# them all with room to spare.
@lru_cache(maxsize=8192)
def parse_term(raw: str) -> Term:
    """`quantiz*` is a prefix term; `self-attention` is the two words self, attention."""
    text = raw.strip()
    prefix = text.endswith("*")
    return Term(raw, tuple(words(text.rstrip("*"))), prefix)


def word_matches(pattern: str, word: str, *, prefix: bool, fuzzy: int | None) -> bool:
    """Whether a text `word` satisfies one term word."""
    if prefix:
        return word.startswith(pattern)
    if word == pattern or word == pattern + "s" or word == pattern + "es":
        return True
    return (
        fuzzy is not None
        and len(pattern) >= FUZZY_MIN_LENGTH
        and len(word) >= FUZZY_MIN_LENGTH
        and fuzz.ratio(pattern, word) >= fuzzy
    )


def phrase_in(term: Term, text: Sequence[str], fuzzy: int | None) -> bool:
    """Whether the term's words occur contiguously in the word list `text`."""
    n = len(term.words)
    if n == 0:
        return False
    last = n - 1
    for start in range(len(text) - n + 1):
        if all(
            word_matches(w, text[start + k], prefix=term.prefix and k == last, fuzzy=fuzzy)
            for k, w in enumerate(term.words)
        ):
            return True
    return False


def name_key(name: str) -> tuple[tuple[str, ...], str]:
    """A person's name as (given-name tokens, family name): accents, case and dots dropped."""
    decomposed = unicodedata.normalize("NFKD", name)
    plain = "".join(ch for ch in decomposed if not unicodedata.combining(ch))
    tokens = words(plain)
    if not tokens:
        return (), ""
    return tuple(tokens[:-1]), tokens[-1]


def same_person(wanted: tuple[tuple[str, ...], str], author: tuple[tuple[str, ...], str]) -> bool:
    """ "Y. LeCun" is "Yann LeCun": the family names agree and the first given names are
    equal or one is the other's initial."""
    (given_w, family_w), (given_a, family_a) = wanted, author
    if not family_w or family_w != family_a:
        return False
    if not given_w or not given_a:
        return True
    first_w, first_a = given_w[0], given_a[0]
    if len(first_w) == 1 or len(first_a) == 1:
        return first_w[0] == first_a[0]
    return first_w == first_a


@dataclass(frozen=True)
class PaperText:
    """A paper's fields as word lists, tokenised once."""

    title: tuple[str, ...]
    abstract: tuple[str, ...]
    authors: tuple[str, ...]
    author_keys: tuple[tuple[tuple[str, ...], str], ...]
    upvotes: int | None
    categories: tuple[str, ...] = ()

    @classmethod
    def of(cls, paper: Paper) -> PaperText:
        author_words: list[str] = []
        for name in paper.authors:
            author_words.extend([*words(name), AUTHOR_SEPARATOR])
        return cls(
            title=tuple(words(paper.title)),
            abstract=tuple(words(paper.abstract)),
            authors=tuple(author_words),
            author_keys=tuple(name_key(n) for n in paper.authors),
            upvotes=paper.upvotes,
            categories=paper.categories,
        )

    def field(self, name: str) -> tuple[str, ...]:
        return {"title": self.title, "abstract": self.abstract, "authors": self.authors}[name]


def term_fields(rule: Rule, raw: str, text: PaperText) -> set[str]:
    """The fields of the rule in which the term occurs."""
    term = parse_term(raw)
    return {f for f in rule.fields if phrase_in(term, text.field(f), rule.fuzzy)}


# Whether a rule's `like:` condition holds for the paper being evaluated (see likeindex).
Liked = Callable[[Rule], bool]


def _nothing_alike(rule: Rule) -> bool:
    return False


def rule_holds(rule: Rule, text: PaperText, liked: Liked = _nothing_alike) -> bool:
    """Whether every condition the rule states holds for the paper."""

    def occurs(raw: str) -> bool:
        return bool(term_fields(rule, raw, text))

    return (
        (not rule.any or any(occurs(t) for t in rule.any))
        and all(occurs(t) for t in rule.all)
        and not any(occurs(t) for t in rule.none)
        and (not rule.authors or any(author_matches(a, text) for a in rule.authors))
        and (not rule.topics or any(rule_holds(t, text, liked) for t in rule.topics))
        and (rule.min_upvotes is None or (text.upvotes or 0) >= rule.min_upvotes)
        and (not rule.categories or in_categories(rule.categories, text))
        and (not rule.like or liked(rule))
    )


def in_categories(patterns: Sequence[str], text: PaperText) -> bool:
    """Whether any of the paper's categories is one the patterns name (none if it has none)."""
    return any(category_matches(p, c) for p in patterns for c in text.categories)


def author_matches(wanted: str, text: PaperText) -> bool:
    """Whether the named person is among the paper's authors."""
    key = name_key(wanted)
    return any(same_person(key, author) for author in text.author_keys)


def explain(rules: Sequence[Rule], text: PaperText, liked: Liked = _nothing_alike) -> Match | None:
    """The Match for the rules that hold, or None: which rules, which terms, and the score
    (without what `like:` conditions add: see `match_paper`)."""
    names: list[str] = []
    terms: dict[str, None] = {}
    title_terms: dict[str, None] = {}
    for rule in rules:
        if not rule_holds(rule, text, liked):
            continue
        names.append(rule.name)
        for sub in (rule, *(t for t in rule.topics if rule_holds(t, text, liked))):
            for raw in sub.terms():
                found = term_fields(sub, raw, text)
                if found:
                    terms[raw] = None
                if "title" in found:
                    title_terms[raw] = None
            for wanted in sub.authors:
                if author_matches(wanted, text):
                    terms[wanted] = title_terms[wanted] = None
            for pattern in sub.categories:
                # The paper's own category explains it: cs.CL, where the rule says cs.*.
                terms.update(dict.fromkeys(matching_categories(pattern, text.categories)))
    if not names:
        return None
    return Match(
        tuple(names), tuple(terms), tuple(title_terms), score(len(title_terms), len(terms))
    )


def score(title_hits: int, distinct_terms: int) -> float:
    """Rank score: a title hit (or a followed author) outweighs any number of abstract hits
    up to ten; among equals, more distinct terms rank higher; upvotes break remaining ties."""
    return float(10 * title_hits + distinct_terms)


def match_paper(
    rules: Sequence[Rule], paper: Paper, likes: LikeIndex | None = None
) -> Match | None:
    """Match one paper against one subscriber's rules, the straightforward way; `likes`
    (over the batch the paper is in) answers `like:` conditions."""
    if likes is None:
        return explain(rules, PaperText.of(paper))
    at = likes.position[paper.id]

    def liked(rule: Rule) -> bool:
        return bool(likes.mask(rule) >> at & 1)

    text = PaperText.of(paper)
    match = explain(rules, text, liked)
    if match is None:
        return None
    scopes = [
        scope
        for rule in rules
        if rule_holds(rule, text, liked)
        for scope in like_scopes(rule)
        if scope is rule or rule_holds(scope, text, liked)
    ]
    if not scopes:
        return match
    reasons, extra = like_reasons(likes, scopes, paper.id)
    return replace(match, similar=reasons, score=match.score + extra)


def rank_key(paper: Paper, match: Match) -> tuple[float, int, str]:
    """Sort key, best first: score, then upvotes, then title for a stable order."""
    return (-match.score, -(paper.upvotes or 0), paper.title.casefold())
