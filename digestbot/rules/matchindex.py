"""Rules stage (pure), at scale: index the day's papers once, resolve each distinct term
once for every subscriber, and evaluate rules as bitwise set operations.

A set of papers is a Python int used as a bitset (bit i = papers[i]), so `any` is OR, `all`
is AND and `none` is AND NOT over a thousand papers in a few machine words. Papers are kept
in tie-break order (upvotes, then title), so the lowest bits of a score level come first.
Results equal `matching.explain` paper by paper; tests hold the two to that.
"""

from __future__ import annotations

from bisect import bisect_left
from collections import defaultdict
from collections.abc import Iterator, Sequence

from rapidfuzz import fuzz, process

from digestbot.models import Match, Paper, Rule, Subscriber
from digestbot.rules.bitsets import count, equals, union
from digestbot.rules.categories import CategoryIndex
from digestbot.rules.likeindex import LikeIndex, has_like, with_likes
from digestbot.rules.matching import (
    FUZZY_MIN_LENGTH,
    PaperText,
    Term,
    name_key,
    parse_term,
    same_person,
    score,
)
from digestbot.rules.similarity import Vectorizer

FIELDS = ("title", "abstract", "authors")
# (rule bitset, ((scope bitset, ((term, anywhere bitset, title bitset), ...)), ...))
_Parts = tuple[int, tuple[tuple[int, tuple[tuple[str, int, int], ...]], ...]]


class PaperIndex:
    """Vocabulary -> postings (bitsets per field) for one batch of papers."""

    def __init__(self, papers: Sequence[Paper], model: Vectorizer | None = None) -> None:
        self.papers = sorted(papers, key=lambda p: (-(p.upvotes or 0), p.title.casefold()))
        # `like:` conditions, with the model fitted on the stored papers when there is one.
        self.likes = LikeIndex(self.papers, model)
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
        self.categories = CategoryIndex(text.categories for text in self.texts)
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
    if not n:
        return True
    first = accepted[0]
    # Most words are not the phrase's first: test that before walking the rest.
    return any(
        word in first and all(text[start + k] in accepted[k] for k in range(1, n))
        for start, word in enumerate(text[: len(text) - n + 1])
    )


class Matcher:
    """Matches many subscribers against one PaperIndex, sharing every term and rule result."""

    def __init__(self, index: PaperIndex) -> None:
        self.index = index
        self._rules: dict[Rule, int] = {}
        self._explainers: dict[Rule, _Parts] = {}

    @property
    def rules_evaluated(self) -> int:
        """How many distinct rules were evaluated (each once, however many share it)."""
        return len(self._rules)

    def rule_mask(self, rule: Rule) -> int:
        """Papers for which every condition of `rule` holds."""
        if rule not in self._rules:
            self._rules[rule] = self._rule_mask(rule)
        return self._rules[rule]

    def _occurs(self, rule: Rule, raw: str) -> int:
        """Papers where the term occurs in any of the rule's fields."""
        return union(self.index.term_mask(raw, f, rule.fuzzy) for f in rule.fields)

    def _rule_mask(self, rule: Rule) -> int:
        ix = self.index
        mask = ix.everything
        if rule.any:
            mask &= union(self._occurs(rule, t) for t in rule.any)
        for term in rule.all:
            mask &= self._occurs(rule, term)
        if rule.authors:
            mask &= union(ix.author_mask(a) for a in rule.authors)
        if rule.topics:
            mask &= union(self.rule_mask(t) for t in rule.topics)
        if rule.min_upvotes is not None:
            mask &= ix.upvotes_at_least(rule.min_upvotes)
        if rule.categories:
            mask &= ix.categories.mask(rule.categories)
        if rule.none and mask:
            mask &= ~union(self._occurs(rule, t) for t in rule.none)
        if rule.like and mask:
            mask &= ix.likes.mask(rule)
        return mask

    def subscriber_mask(self, subscriber: Subscriber) -> int:
        """Papers reaching the subscriber: any of their rules matches."""
        return union(self.rule_mask(r) for r in subscriber.rules)

    def top(
        self, subscriber: Subscriber, within: int, limit: int
    ) -> tuple[list[tuple[Paper, Match]], int]:
        """The `limit` best matches in `within`, ranked as rank_key does, and how many matched.

        Scores come from bit-sliced counters over the term bitsets, so only the papers kept
        are explained one by one.
        """
        mask = self.subscriber_mask(subscriber) & within
        total = mask.bit_count()
        if total <= limit or has_like(subscriber):
            # A `like:` rule adds its cosine to the score, which the score levels (term
            # counts) cannot hold: its subscriber's matches are explained and sorted.
            ranked = sorted(self.matches(subscriber, mask), key=lambda pm: -pm[1].score)
            return ranked[:limit], total
        kept: list[int] = []
        for level in self._score_levels(subscriber, mask):
            for i in self.index.bits(level):
                kept.append(i)
                if len(kept) == limit:
                    parts = self._rule_parts(subscriber.rules)
                    return [(self.index.papers[i], _explain(parts, i)) for i in kept], total
        raise AssertionError("score levels cover every matched paper")

    def _score_levels(self, subscriber: Subscriber, mask: int) -> list[int]:
        """The matched papers grouped by score, best score first."""
        distinct: list[int] = []
        in_title: list[int] = []
        for anywhere, title in self._term_masks(subscriber.rules, mask).values():
            distinct.append(anywhere)
            in_title.append(title)
        d_bits, t_bits = count(distinct), count(in_title)
        levels: dict[float, int] = {}
        for d in range(len(distinct) + 1):
            exactly_d = equals(d_bits, d, mask)
            if not exactly_d:
                continue
            for t in range(d + 1):
                level = exactly_d & equals(t_bits, t, mask)
                if level:
                    key = score(t, d)
                    levels[key] = levels.get(key, 0) | level
        return [levels[key] for key in sorted(levels, reverse=True)]

    def _term_masks(self, rules: Sequence[Rule], mask: int) -> dict[str, list[int]]:
        """Per explaining term: the papers where it counts, anywhere and in the title."""
        masks: dict[str, list[int]] = {}
        for rule in rules:
            rule_mask, scopes = self._parts(rule)
            matched = rule_mask & mask
            if not matched:
                continue
            for scope_mask, entries in scopes:
                scope = matched & scope_mask
                for raw, anywhere, title in entries:
                    entry = masks.setdefault(raw, [0, 0])
                    entry[0] |= anywhere & scope
                    entry[1] |= title & scope
        return masks

    def _rule_parts(self, rules: Sequence[Rule]) -> list[tuple[str, _Parts]]:
        """Each rule's name and parts, looked up once per subscriber rather than once per
        paper explained: hashing a rule hashes all its fields, topics included."""
        return [(rule.name, self._parts(rule)) for rule in rules]

    def _parts(self, rule: Rule) -> _Parts:
        """A rule's bitset, and per scope (the rule, then each topic) its explaining terms."""
        if (parts := self._explainers.get(rule)) is not None:
            return parts
        scopes = []
        for sub in (rule, *rule.topics):
            entries = [
                (
                    raw,
                    self._occurs(sub, raw),
                    self.index.term_mask(raw, "title", sub.fuzzy) if "title" in sub.fields else 0,
                )
                for raw in sub.terms()
            ]
            for wanted in sub.authors:
                found = self.index.author_mask(wanted)
                entries.append((wanted, found, found))
            for pattern in sub.categories:
                entries += ((c, found, 0) for c, found in self.index.categories.explaining(pattern))
            scope = self.index.everything if sub is rule else self.rule_mask(sub)
            scopes.append((scope, tuple(entries)))
        self._explainers[rule] = parts = (self.rule_mask(rule), tuple(scopes))
        return parts

    def matches(
        self, subscriber: Subscriber, within: int | None = None
    ) -> list[tuple[Paper, Match]]:
        """The subscriber's matching papers (optionally only those in `within`), explained."""
        mask = self.subscriber_mask(subscriber)
        if within is not None:
            mask &= within
        parts = self._rule_parts(subscriber.rules)
        found = [(self.index.papers[i], _explain(parts, i)) for i in self.index.bits(mask)]
        if not has_like(subscriber):
            return found
        return [
            (paper, with_likes(self.index.likes, self.rule_mask, subscriber, paper, match))
            for paper, match in found
        ]


def _explain(rule_parts: Sequence[tuple[str, _Parts]], i: int) -> Match:
    """Which rules and terms matched paper i, read off the rules' cached bitsets (each
    rule's name and parts, from Matcher._rule_parts)."""
    names: list[str] = []
    terms: dict[str, None] = {}
    title_terms: dict[str, None] = {}
    for name, (rule_mask, scopes) in rule_parts:
        if not rule_mask >> i & 1:
            continue
        names.append(name)
        for scope, entries in scopes:
            if not scope >> i & 1:
                continue
            for raw, anywhere, title in entries:
                if anywhere >> i & 1:
                    terms[raw] = None
                if title >> i & 1:
                    title_terms[raw] = None
    strength = score(len(title_terms), len(terms))
    return Match(tuple(names), tuple(terms), tuple(title_terms), strength)
