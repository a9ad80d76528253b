"""Rules stage (pure): ranking that learns from a reader's votes (logistic regression, TF-IDF).

A subscriber with enough "up" (more like this) and "down" (not relevant) votes gets a linear
model of their taste, trained on the same TF-IDF features as "papers like these". Its score
for a paper is the probability that the reader would vote it up (0 to 1; 0.5 is undecided).

Regularised logistic regression leaves a word that none of the voted papers uses at weight
0, so each model is fitted on the few columns its papers use and kept as a sparse row: the
models of many subscribers stack into one sparse matrix, and scoring all of them against all
new papers is one sparse matrix product (`score_all`).
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from scipy import sparse
from sklearn.linear_model import LogisticRegression

from digestbot.models import Paper
from digestbot.rules.similarity import TextModel, paper_text

MIN_UP = 5
MIN_DOWN = 5
# scikit-learn's default inverse regularisation strength: with few votes on L2-normalised
# TF-IDF rows it keeps probabilities modest (a clearly liked-looking paper scores about 0.55
# to 0.7 after ten votes); a larger C makes them bolder and fits the votes more closely.
C = 1.0
# Readers scored per sparse product in `score_all`: bounds its temporary arrays.
SLICE = 10_000
# A recommendation must be more likely liked than not.
RECOMMEND_ABOVE = 0.5


class Reranked(NamedTuple):
    """A rule-selected paper, its rule score and the model's probability of an "up"."""

    paper: Paper
    score: float
    probability: float


class Recommendation(NamedTuple):
    """A paper no rule selected, the model's probability of an "up", and the liked paper it
    reads most alike (with their cosine): the reason given to the reader."""

    paper: Paper
    probability: float
    nearest: Paper
    similarity: float


@dataclass(frozen=True)
class Taste:
    """One subscriber's trained model: weights over the TF-IDF vocabulary (a one-row sparse
    matrix), an intercept, and the papers they liked (with their TF-IDF rows)."""

    model: TextModel
    weights: Any
    intercept: float
    liked: tuple[Paper, ...]
    liked_vectors: Any
    voted: frozenset[str]

    def score(self, papers: Sequence[Paper]) -> list[float]:
        """The probability (0 to 1) that the reader votes each paper up."""
        if not papers:
            return []
        return [float(p) for p in score_all([self], papers)[:, 0]]

    def nearest_liked(self, paper: Paper) -> tuple[Paper, float]:
        """The liked paper `paper` reads most alike, with their TF-IDF cosine (ties: the
        liked paper with the smallest id)."""
        return _nearest(self, self.model.vectors([paper_text(paper)]))[0]


def train(
    model: TextModel,
    liked: Sequence[Paper],
    disliked: Sequence[Paper],
    *,
    min_up: int = MIN_UP,
    min_down: int = MIN_DOWN,
    c: float = C,
) -> Taste | None:
    """The reader's taste learnt from the papers they voted up (`liked`) and down
    (`disliked`); None below `min_up` or `min_down` votes, or when the texts share no word
    with the model's vocabulary (there is nothing to learn from)."""
    if not model.fitted or len(liked) < min_up or len(disliked) < min_down:
        return None
    # Sorted by id, so the same votes give the same model whatever order they came in.
    up = sorted(liked, key=lambda p: p.id)
    down = sorted(disliked, key=lambda p: p.id)
    vectors = model.vectors([paper_text(p) for p in (*up, *down)]).tocsr()
    return _fit(model, up, [p.id for p in down], vectors, c)


def train_all(
    model: TextModel,
    votes: Mapping[int, Mapping[str, str]],
    papers: Mapping[str, Paper],
    *,
    min_up: int = MIN_UP,
    min_down: int = MIN_DOWN,
    c: float = C,
) -> dict[int, Taste]:
    """A taste for every subscriber in `votes` (subscriber id → paper id → "up"/"down") with
    enough votes on papers in `papers`; each voted paper is turned into TF-IDF once, however
    many readers voted on it."""
    if not model.fitted:
        return {}
    order = sorted({pid for theirs in votes.values() for pid in theirs if pid in papers})
    if not order:
        return {}
    known = {pid: row for row, pid in enumerate(order)}
    matrix = model.vectors([paper_text(papers[pid]) for pid in order]).tocsr()
    tastes: dict[int, Taste] = {}
    for subscriber, theirs in sorted(votes.items()):
        up = sorted(pid for pid, vote in theirs.items() if vote == "up" and pid in known)
        down = sorted(pid for pid, vote in theirs.items() if vote == "down" and pid in known)
        if len(up) < min_up or len(down) < min_down:
            continue
        rows = matrix[[known[pid] for pid in (*up, *down)]]
        taste = _fit(model, [papers[pid] for pid in up], down, rows, c)
        if taste is not None:
            tastes[subscriber] = taste
    return tastes


def _fit(
    model: TextModel, up: Sequence[Paper], down: Sequence[str], vectors: Any, c: float
) -> Taste | None:
    """Fit on `vectors` (the rows of `up`, then of the papers `down` names), using only the
    columns those papers use: the others would weigh 0 anyway."""
    columns = np.unique(vectors.indices)
    if columns.size == 0:
        return None
    # liblinear's dual solver suits a few rows over many columns: about 20 times faster here
    # than the default lbfgs (it also regularises the intercept, pulling it toward 0).
    classifier = LogisticRegression(
        C=c, class_weight="balanced", solver="liblinear", dual=True, random_state=0
    )
    labels = np.array([1] * len(up) + [0] * len(down))
    classifier.fit(vectors[:, columns], labels)
    width = vectors.shape[1]
    weights = sparse.csr_matrix(
        (classifier.coef_[0].astype(np.float32), (np.zeros(columns.size, int), columns)),
        shape=(1, width),
    )
    return Taste(
        model=model,
        weights=weights,
        intercept=float(classifier.intercept_[0]),
        liked=tuple(up),
        liked_vectors=vectors[: len(up)],
        voted=frozenset([*(p.id for p in up), *down]),
    )


def score_all(tastes: Sequence[Taste], papers: Sequence[Paper]) -> Any:
    """Every taste's probability of an "up" for every paper, as a papers by tastes float32
    array (4 bytes a cell: 1,000 papers by 100,000 readers is 400 MB). The tastes must share
    one `TextModel`. The papers are turned into TF-IDF once and scored against a slice of
    readers at a time, each slice one sparse matrix product."""
    scores = np.zeros((len(papers), len(tastes)), dtype=np.float32)
    if not tastes or not papers:
        return scores
    vectors = tastes[0].model.vectors([paper_text(p) for p in papers]).tocsr()
    for start in range(0, len(tastes), SLICE):
        stop = min(start + SLICE, len(tastes))
        weights = sparse.vstack([t.weights for t in tastes[start:stop]], format="csr")
        logits = (vectors @ weights.T).toarray()
        logits += np.array([t.intercept for t in tastes[start:stop]], dtype=np.float32)
        # The logistic function, in place: 1 / (1 + e^-logit); e^-logit may overflow to
        # infinity, which rightly gives 0.
        with np.errstate(over="ignore"):
            np.negative(logits, out=logits)
            np.exp(logits, out=logits)
            logits += 1.0
            np.reciprocal(logits, out=logits)
        scores[:, start:stop] = logits
    return scores


def _nearest(taste: Taste, vectors: Any) -> list[tuple[Paper, float]]:
    """For each TF-IDF row, the liked paper with the highest cosine, and that cosine."""
    cosines = (vectors @ taste.liked_vectors.T).toarray()
    best = cosines.argmax(axis=1)
    return [(taste.liked[j], float(cosines[i, j])) for i, j in enumerate(best)]


def rerank(taste: Taste, ranked: Sequence[tuple[Paper, float]]) -> list[Reranked]:
    """Rule-selected papers (with their rule scores) ordered by the model's probability of
    an "up", in hundredths (as a reader sees it); papers the model rates alike keep their
    order by rule score, then their order in `ranked`."""
    probabilities = taste.score([paper for paper, _ in ranked])
    items = [
        Reranked(paper, score, probability)
        for (paper, score), probability in zip(ranked, probabilities, strict=True)
    ]
    return sorted(items, key=lambda item: (-round(item.probability, 2), -item.score))


def recommend(
    taste: Taste, candidates: Sequence[Paper], exclude_ids: Collection[str], n: int
) -> list[Recommendation]:
    """Up to `n` of `candidates` the model rates above 0.5, best first (ties by id), leaving
    out `exclude_ids` (what the rules selected), the papers the reader voted on, and any
    paper sharing no word with a liked paper (it would have no reason to give)."""
    pool = [p for p in candidates if p.id not in exclude_ids and p.id not in taste.voted]
    if n <= 0 or not pool:
        return []
    probabilities = taste.score(pool)
    nearest = _nearest(taste, taste.model.vectors([paper_text(p) for p in pool]))
    found = [
        Recommendation(paper, probability, liked, cosine)
        for paper, probability, (liked, cosine) in zip(pool, probabilities, nearest, strict=True)
        if probability > RECOMMEND_ABOVE and cosine > 0.0
    ]
    found.sort(key=lambda r: (-r.probability, r.paper.id))
    return found[:n]
