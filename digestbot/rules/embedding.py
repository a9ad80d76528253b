"""Rules stage: dense embeddings for `like:` rules (model2vec), in place of TF-IDF.

An `EmbeddingModel` turns texts into L2-normalised vectors as `TextModel` does, so the same
cosines and reductions serve both. Papers' vectors come from the store when they were
computed before (`Precomputed`): each paper is embedded once per model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from digestbot.errors import ConfigError
from digestbot.models import Paper
from digestbot.rules.similarity import paper_text


class EmbeddingModel:
    """A model2vec static model, loaded from a folder or by name (model2vec downloads a
    name on first use, as it always does)."""

    def __init__(self, name: str) -> None:
        try:
            from model2vec import StaticModel
        except ImportError:
            raise ConfigError(
                "DIGESTBOT_EMBEDDING_MODEL is set but model2vec is not installed",
                "pip install 'digestbot[embeddings]', or unset it to use TF-IDF",
            ) from None
        if name.startswith(("/", ".", "~")) and not Path(name).expanduser().is_dir():
            raise ConfigError(
                f"DIGESTBOT_EMBEDDING_MODEL: folder {name} does not exist",
                "give a model2vec model folder or name",
            )
        try:
            self.model = StaticModel.from_pretrained(str(Path(name).expanduser()))
        except (OSError, ValueError) as exc:
            # The hub's messages run over several lines: the first says what went wrong.
            reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise ConfigError(
                f"DIGESTBOT_EMBEDDING_MODEL {name!r}: cannot load it: {reason}",
                "give a model2vec model folder or name",
            ) from None
        self.name = name
        self.fitted = True

    def vectors(self, texts: Sequence[str]) -> Any:
        """The L2-normalised embeddings of `texts` (a text with no known word is all 0)."""
        if not texts:
            return np.zeros((0, self.model.dim), dtype=np.float32)
        found = np.asarray(self.model.encode(list(texts)), dtype=np.float32)
        norms = np.linalg.norm(found, axis=1, keepdims=True)
        return np.divide(found, norms, out=np.zeros_like(found), where=norms > 0)


class Precomputed:
    """An embedding model with some papers' vectors at hand (from the store): those are not
    computed again."""

    def __init__(self, model: EmbeddingModel, known: Mapping[str, Any]) -> None:
        self.model, self.known, self.fitted = model, known, True

    def vectors(self, texts: Sequence[str]) -> Any:
        return self.model.vectors(texts)

    def paper_vectors(self, papers: Sequence[Paper]) -> Any:
        """The papers' vectors, in order: stored ones as they are, the rest computed."""
        missing = [p for p in papers if p.id not in self.known]
        computed = dict(
            zip(
                (p.id for p in missing),
                self.model.vectors([paper_text(p) for p in missing]),
                strict=True,
            )
        )
        return np.array([self.known.get(p.id, computed.get(p.id)) for p in papers])
