"""Matching stage (pure): does a paper satisfy a subscriber's rules, and why."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from digestbot.models import Match, Paper, Rule
from digestbot.textnorm import words

TITLE_WEIGHT = 2.0
ABSTRACT_WEIGHT = 1.0


@dataclass(frozen=True)
class _Text:
    """A paper's fields as space-padded word strings, so a phrase matches on word bounds."""

    title: str
    abstract: str

    @classmethod
    def of(cls, paper: Paper) -> _Text:
        return cls(_padded(paper.title), _padded(paper.abstract))

    def in_title(self, term: str) -> bool:
        return _phrase(term) in self.title

    def anywhere(self, term: str) -> bool:
        phrase = _phrase(term)
        return bool(phrase.strip()) and (phrase in self.title or phrase in self.abstract)


def _padded(text: str) -> str:
    return f" {' '.join(words(text))} "


def _phrase(term: str) -> str:
    return _padded(term)


def match_paper(rules: Sequence[Rule], paper: Paper) -> Match | None:
    """Match `paper` against `rules`: it matches when any rule does; None when none does."""
    text = _Text.of(paper)
    names: list[str] = []
    terms: list[str] = []
    for rule in rules:
        hits = _rule_hits(rule, text)
        if hits is None:
            continue
        names.append(rule.name)
        terms.extend(t for t in hits if t not in terms)
    if not names:
        return None
    title_terms = tuple(t for t in terms if text.in_title(t))
    score = TITLE_WEIGHT * len(title_terms) + ABSTRACT_WEIGHT * (len(terms) - len(title_terms))
    return Match(rules=tuple(names), terms=tuple(terms), title_terms=title_terms, score=score)


def _rule_hits(rule: Rule, text: _Text) -> list[str] | None:
    """The terms that made `rule` match, or None when it does not match."""
    if any(text.anywhere(term) for term in rule.none):
        return None
    if not all(text.anywhere(term) for term in rule.all):
        return None
    any_hits = [term for term in rule.any if text.anywhere(term)]
    if rule.any and not any_hits:
        return None
    if not rule.any and not rule.all:
        return None
    return _dedupe([*rule.all, *any_hits])


def _dedupe(items: Iterable[str]) -> list[str]:
    return list(dict.fromkeys(items))


def rank_key(paper: Paper, match: Match) -> tuple[float, int, str]:
    """Sort key, best first: score, then upvotes, then title for a stable order."""
    return (-match.score, -(paper.upvotes or 0), paper.title.casefold())
