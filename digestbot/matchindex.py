"""Matching stage (pure), at scale: index the day's papers once, resolve each distinct term
once for every subscriber, and evaluate rules as bitwise set operations.

A set of papers is a Python int used as a bitset (bit i = papers[i]), so `any` is OR, `all`
is AND and `none` is AND NOT over a thousand papers in a few machine words. Results equal
`matching.explain` paper by paper; tests hold the two to that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence

from rapidfuzz import fuzz, process

from digestbot.matching import (
    FUZZY_MIN_LENGTH,
    PaperText,
    Term,
    name_key,
    parse_term,
    same_person,
    score,
)
from digestbot.models import Match, Paper, Rule, Subscriber

FIELDS = ("title", "abstract", "authors")


class PaperIndex:
    """Vocabulary -> postings (bitsets per field) for one batch of papers."""

    def __init__(self, papers: Sequence[Paper]) -> None:
        self.papers = list(papers)
        self.texts = [PaperText.of(p) for p in self.papers]
        self.everything = (1 << len(self.papers)) - 1
        self.postings: dict[str, dict[str, int]] = {f: defaultdict(int) for f in FIELDS}
        self.families: dict[str, list[tuple[int, tuple[str, ...]]]] = defaultdict(list)
        for i, text in enumerate(self.texts):
            bit = 1 << i
            for field in FIELDS:
                postings = self.postings[field]
                for word in set(text.field(field)):
                    postings[word] |= bit
            for given, family in text.author_keys:
                self.families[family].append((i, given))
        self.vocabulary = sorted({w for f in FIELDS for w in self.postings[f]})
        self._long_words = [w for w in self.vocabulary if len(w) >= FUZZY_MIN_LENGTH]
        self._words: dict[tuple[str, bool, int | None], frozenset[str]] = {}
        self._terms: dict[tuple[str, str, int | None], int] = {}
        self._upvotes: dict[int, int] = {}
        self._authors: dict[str, int] = {}

    def bits(self, mask: int) -> Iterator[int]:
        """The paper positions set in `mask`, lowest first."""
        while mask:
            low = mask & -mask
            yield low.bit_length() - 1
            mask ^= low

    def matching_words(self, pattern: str, *, prefix: bool, fuzzy: int | None) -> frozenset[str]:
        """Every vocabulary word one term word accepts: itself, plurals, prefix or fuzzy kin."""
        key = (pattern, prefix, fuzzy)
        if key not in self._words:
            self._words[key] = frozenset(self._resolve(pattern, prefix, fuzzy))
        return self._words[key]

    def _resolve(self, pattern: str, prefix: bool, fuzzy: int | None) -> Iterator[str]:
        if prefix:
            start = bisect_left(self.vocabulary, pattern)
            for word in self.vocabulary[start:]:
                if not word.startswith(pattern):
                    break
                yield word
            return
        yield from (pattern, pattern + "s", pattern + "es")
        if fuzzy is not None and len(pattern) >= FUZZY_MIN_LENGTH:
            found = process.extract(
                pattern, self._long_words, scorer=fuzz.ratio, score_cutoff=fuzzy, limit=None
            )
            yield from (word for word, _, _ in found)

    def term_mask(self, raw: str, field: str, fuzzy: int | None) -> int:
        """Papers whose `field` contains the term."""
        key = (raw, field, fuzzy)
        if key not in self._terms:
            self._terms[key] = self._term_mask(parse_term(raw), field, fuzzy)
        return self._terms[key]

    def _term_mask(self, term: Term, field: str, fuzzy: int | None) -> int:
        if not term.words:
            return 0
        postings = self.postings[field]
        last = len(term.words) - 1
        accepted = [
            self.matching_words(w, prefix=term.prefix and k == last, fuzzy=fuzzy)
            for k, w in enumerate(term.words)
        ]
        candidates = self.everything
        for choices in accepted:
            mask = 0
            for word in choices:
                mask |= postings.get(word, 0)
            candidates &= mask
        if len(term.words) == 1 or not candidates:
            return candidates
        # Every word occurs; keep the papers where they occur side by side.
        result = 0
        for i in self.bits(candidates):
            if _contiguous(self.texts[i].field(field), accepted):
                result |= 1 << i
        return result

    def author_mask(self, wanted: str) -> int:
        """Papers with the named person among their authors."""
        if wanted not in self._authors:
            key = name_key(wanted)
            mask = 0
            for i, given in self.families.get(key[1], ()):
                if same_person(key, (given, key[1])):
                    mask |= 1 << i
            self._authors[wanted] = mask
        return self._authors[wanted]

    def upvotes_at_least(self, minimum: int) -> int:
        if minimum not in self._upvotes:
            mask = 0
            for i, text in enumerate(self.texts):
                if (text.upvotes or 0) >= minimum:
                    mask |= 1 << i
            self._upvotes[minimum] = mask
        return self._upvotes[minimum]


def _contiguous(text: Sequence[str], accepted: Sequence[frozenset[str]]) -> bool:
    n = len(accepted)
    return any(
        all(text[start + k] in accepted[k] for k in range(n)) for start in range(len(text) - n + 1)
    )


class Matcher:
    """Matches many subscribers against one PaperIndex, sharing every term and rule result."""

    def __init__(self, index: PaperIndex) -> None:
        self.index = index
        self._rules: dict[Rule, int] = {}

    def rule_mask(self, rule: Rule) -> int:
        """Papers for which every condition of `rule` holds."""
        if rule not in self._rules:
            self._rules[rule] = self._rule_mask(rule)
        return self._rules[rule]

    def _occurs(self, rule: Rule, raw: str) -> int:
        """Papers where the term occurs in any of the rule's fields."""
        return _union(self.index.term_mask(raw, f, rule.fuzzy) for f in rule.fields)

    def _rule_mask(self, rule: Rule) -> int:
        ix = self.index
        mask = ix.everything
        if rule.any:
            mask &= _union(self._occurs(rule, t) for t in rule.any)
        for term in rule.all:
            mask &= self._occurs(rule, term)
        if rule.authors:
            mask &= _union(ix.author_mask(a) for a in rule.authors)
        if rule.topics:
            mask &= _union(self.rule_mask(t) for t in rule.topics)
        if rule.min_upvotes is not None:
            mask &= ix.upvotes_at_least(rule.min_upvotes)
        if rule.none and mask:
            mask &= ~_union(self._occurs(rule, t) for t in rule.none)
        return mask

    def subscriber_mask(self, subscriber: Subscriber) -> int:
        """Papers reaching the subscriber: any of their rules matches."""
        return _union(self.rule_mask(r) for r in subscriber.rules)

    def matches(
        self, subscriber: Subscriber, within: int | None = None
    ) -> list[tuple[Paper, Match]]:
        """The subscriber's matching papers (optionally only those in `within`), explained."""
        mask = self.subscriber_mask(subscriber)
        if within is not None:
            mask &= within
        return [
            (self.index.papers[i], self._explain(subscriber.rules, i))
            for i in self.index.bits(mask)
        ]

    def _explain(self, rules: Sequence[Rule], i: int) -> Match:
        """Which rules and terms matched paper i, read off the cached bitsets."""
        names: list[str] = []
        terms: dict[str, None] = {}
        title_terms: dict[str, None] = {}
        for rule in rules:
            if not self.rule_mask(rule) >> i & 1:
                continue
            names.append(rule.name)
            for sub in (rule, *(t for t in rule.topics if self.rule_mask(t) >> i & 1)):
                for raw in sub.terms():
                    if self._occurs(sub, raw) >> i & 1:
                        terms[raw] = None
                    if (
                        "title" in sub.fields
                        and self.index.term_mask(raw, "title", sub.fuzzy) >> i & 1
                    ):
                        title_terms[raw] = None
                for wanted in sub.authors:
                    if self.index.author_mask(wanted) >> i & 1:
                        terms[wanted] = title_terms[wanted] = None
        return Match(
            tuple(names), tuple(terms), tuple(title_terms), score(len(title_terms), len(terms))
        )


def _union(masks: Iterator[int] | Sequence[int]) -> int:
    result = 0
    for mask in masks:
        result |= mask
    return result
