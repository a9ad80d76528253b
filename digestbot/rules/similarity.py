"""Rules stage (pure): how alike papers read, for "papers like these" (TF-IDF, cosine).

Each paper is its title and abstract as TF-IDF over unigrams and bigrams (sublinear term
frequency, English stop words dropped), fitted on the stored papers; rows are L2-normalised,
so a sparse matrix product gives every cosine at once. A paper's similarity to a set of
seeds is its highest cosine to any of them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer

from digestbot.models import Paper


@dataclass(frozen=True)
class Liked:
    """A paper's similarity to the seeds, and which seed it is nearest to (its index)."""

    paper: Paper
    similarity: float
    nearest: int


def paper_text(paper: Paper) -> str:
    """What a paper is compared by: its title and its abstract."""
    return f"{paper.title}\n{paper.abstract}"


class Vectorizer(Protocol):
    """What turns texts into L2-normalised rows: TF-IDF here, embeddings in rules.embedding."""

    fitted: bool

    def vectors(self, texts: Sequence[str]) -> Any: ...


class TextModel:
    """TF-IDF fitted on a corpus of papers: turns texts into comparable vectors."""

    def __init__(self, corpus: Sequence[Paper]) -> None:
        self.vectorizer = TfidfVectorizer(
            sublinear_tf=True, ngram_range=(1, 2), stop_words="english", dtype=np.float32
        )
        self.size = len(corpus)
        # An empty corpus (or one of stop words only) has no vocabulary: nothing is alike.
        texts = [paper_text(p) for p in corpus]
        self.fitted = any(t.strip() for t in texts)
        if self.fitted:
            try:
                self.vectorizer.fit(texts)
            except ValueError:
                self.fitted = False

    def vectors(self, texts: Sequence[str]) -> Any:
        """The L2-normalised TF-IDF rows of `texts` (a scipy sparse matrix)."""
        return self.vectorizer.transform(list(texts))


def rank_like(model: Vectorizer, seeds: Sequence[str], papers: Sequence[Paper]) -> list[Liked]:
    """`papers` by their highest cosine to any of `seeds` (texts), most alike first, ties by
    title; a paper with nothing in common with the seeds scores 0."""
    if not papers or not seeds or not model.fitted:
        return [Liked(p, 0.0, 0) for p in papers]
    stored = getattr(model, "paper_vectors", None)  # embeddings kept in the store
    rows = stored(papers) if stored else model.vectors([paper_text(p) for p in papers])
    every = cosines(rows, model.vectors(seeds))
    best = every.argmax(axis=1)
    scored = [
        Liked(paper, float(every[i, best[i]]), int(best[i])) for i, paper in enumerate(papers)
    ]
    return sorted(scored, key=lambda liked: (-liked.similarity, liked.paper.title))


def cosines(paper_vectors: Any, seed_vectors: Any) -> Any:
    """Every paper's cosine to every seed, as a dense (papers x seeds) float32 array: one
    sparse product (the rows are L2-normalised)."""
    product = paper_vectors @ seed_vectors.T
    # Sparse for TF-IDF, already dense for embeddings (rules.embedding).
    return product.toarray() if hasattr(product, "toarray") else np.asarray(product)


def best_by_rule(cosines: Any, starts: Sequence[int], seed_ids: Any = None) -> Any:
    """For many rules at once: each paper's highest cosine to any of each rule's seeds, as a
    dense (papers x rules) array, from `cosines` (papers x seeds).

    The seeds are the columns in rule order, rule r's starting at `starts[r]`; or, with
    `seed_ids`, each distinct seed is one column and `seed_ids` lists the columns of every
    rule's seeds in rule order (readers share seed papers: each cosine is computed once).
    A reduction per rule keeps the best: no Python loop runs per paper or per rule.
    """
    if seed_ids is not None:
        cosines = cosines[:, np.asarray(seed_ids, dtype=np.intp)]
    if not len(starts):
        return np.zeros((cosines.shape[0], 0), dtype=np.float32)
    return np.maximum.reduceat(cosines, np.asarray(starts, dtype=np.intp), axis=1)
