"""Rules stage (pure): `like:` conditions over one batch of papers, for both evaluators.

A `like:` rule holds for a paper whose highest TF-IDF cosine to the rule's seeds reaches its
`min_similarity` (DEFAULT_MIN_SIMILARITY when unset), or, with `top: N`, for the N papers of
the batch most alike to them (cosine above 0; ties go to the earlier paper). A seed that is
a stored paper is never chosen by its own rule. The model is
the one fitted on the stored papers when the planner gives it, else fitted on the batch.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import numpy as np

from digestbot.models import DEFAULT_MIN_SIMILARITY, Match, Paper, Rule, Seed, Subscriber
from digestbot.rules.similarity import TextModel, Vectorizer, cosines, paper_text

LIKE_WEIGHT = 10.0  # a cosine of 1 counts as much as a title hit in a match's score


class LikeIndex:
    """Each paper's cosine to each seed set, computed once per distinct set."""

    def __init__(self, papers: Sequence[Paper], model: Vectorizer | None = None) -> None:
        self.papers = list(papers)
        self.position = {p.id: i for i, p in enumerate(self.papers)}
        self._model = model
        self._vectors: Any = None
        self._cosines: dict[tuple[Seed, ...], Any] = {}
        self._masks: dict[tuple[tuple[Seed, ...], float | None, int | None], int] = {}

    def _papers_vectors(self) -> tuple[Vectorizer, Any]:
        if self._model is None:
            self._model = TextModel(self.papers)
        if self._vectors is None:
            # Embeddings computed before come from the store (rules.embedding.Precomputed).
            stored = getattr(self._model, "paper_vectors", None)
            if stored is not None:
                self._vectors = stored(self.papers)
            else:
                self._vectors = self._model.vectors([paper_text(p) for p in self.papers])
        return self._model, self._vectors

    def cosines(self, seeds: tuple[Seed, ...]) -> Any:
        """(papers x seeds) cosines of the batch to `seeds`."""
        if seeds not in self._cosines:
            model, vectors = self._papers_vectors()
            if not model.fitted or not self.papers:
                found = np.zeros((len(self.papers), len(seeds)), dtype=np.float32)
            else:
                found = cosines(vectors, model.vectors([s.text for s in seeds]))
            self._cosines[seeds] = found
        return self._cosines[seeds]

    def best(self, seeds: tuple[Seed, ...], paper_id: str) -> tuple[float, Seed]:
        """A paper's highest cosine to the seeds, and the seed it is nearest to."""
        row = self.cosines(seeds)[self.position[paper_id]]
        at = int(row.argmax())
        return float(row[at]), seeds[at]

    def mask(self, rule: Rule) -> int:
        """Papers (bit i = papers[i]) for which the rule's `like:` condition holds."""
        key = (rule.like, rule.min_similarity, rule.top)
        if key not in self._masks:
            best = self.cosines(rule.like).max(axis=1) if self.papers else np.zeros(0)
            for seed in rule.like:  # a reader who names a paper has it already
                if seed.paper_id in self.position:
                    best[self.position[seed.paper_id]] = 0.0
            if rule.top is not None:
                # Stable: among equal cosines the earlier paper (tie-break order) wins.
                order = np.argsort(-best, kind="stable")[: rule.top]
                chosen = np.zeros(len(best), dtype=bool)
                chosen[order[best[order] > 0]] = True
            else:
                threshold = rule.min_similarity or DEFAULT_MIN_SIMILARITY
                chosen = best >= threshold
            self._masks[key] = _bits(chosen)
        return self._masks[key]


def _bits(chosen: Any) -> int:
    """A numpy bool array as an int bitset (bit i = chosen[i])."""
    packed = np.packbits(np.asarray(chosen, dtype=bool), bitorder="little")
    return int.from_bytes(packed.tobytes(), "little")


def like_scopes(rule: Rule) -> tuple[Rule, ...]:
    """The rule and its topics that have a `like:` condition."""
    return tuple(r for r in (rule, *rule.topics) if r.like)


def like_reasons(
    likes: LikeIndex, scopes: Sequence[Rule], paper_id: str
) -> tuple[tuple[str, ...], float]:
    """For a paper the given like-scopes hold for: `like: <nearest seed> (0.41)` per scope,
    and the score it adds (LIKE_WEIGHT times its best cosine)."""
    reasons: dict[str, None] = {}
    top = 0.0
    for scope in scopes:
        similarity, seed = likes.best(scope.like, paper_id)
        reasons[f"like: {seed.label} ({similarity:.2f})"] = None
        top = max(top, similarity)
    return tuple(reasons), LIKE_WEIGHT * top


def has_like(subscriber: Subscriber) -> bool:
    """Whether any of the subscriber's rules (or their topics) has a `like:` condition."""
    return any(like_scopes(rule) for rule in subscriber.rules)


def with_likes(
    likes: LikeIndex,
    rule_mask: Callable[[Rule], int],
    subscriber: Subscriber,
    paper: Paper,
    match: Match,
) -> Match:
    """`match` with the `like:` reasons of the rules (and topics) that chose the paper, and
    their cosine added to its score; `rule_mask` gives the papers a rule holds for."""
    bit = 1 << likes.position[paper.id]
    scopes = [
        scope
        for rule in subscriber.rules
        if rule_mask(rule) & bit
        for scope in like_scopes(rule)
        if rule_mask(scope) & bit
    ]
    if not scopes:
        return match
    reasons, extra = like_reasons(likes, scopes, paper.id)
    return replace(match, similar=reasons, score=match.score + extra)
