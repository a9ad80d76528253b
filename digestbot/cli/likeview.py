"""CLI: `papers list --like`: stored papers ranked by how alike they read to a seed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine

from digestbot.errors import ConfigError
from digestbot.ingest import papers
from digestbot.ingest.textnorm import words
from digestbot.models import Paper
from digestbot.rules.likestore import SeedBook, like_model
from digestbot.rules.similarity import paper_text, rank_like
from digestbot.settings import Settings

LABEL = 60  # characters of a free-text seed shown beside each paper


@dataclass(frozen=True)
class Why:
    """Why a paper is in a list: the line printed under it, and what its JSON object gains."""

    line: str
    fields: dict[str, Any] = field(default_factory=dict)


def alike(
    engine: Engine, settings: Settings, key: str, rows: Sequence[Paper]
) -> list[tuple[Paper, Why]]:
    """`rows` that have anything in common with the seed `key`, most alike first; the seed
    paper itself is left out. Compared as `like:` rules compare (likestore.like_model)."""
    book = SeedBook(engine)
    if problem := book.problem(key):
        raise ConfigError(f"--like: {problem}", "give a stored paper's id or title, or a text")
    if not words(key):
        raise ConfigError("--like: nothing to compare with", "give a paper's id or a text")
    pid = book.named(key)
    seed = papers.papers_by_id(engine, [pid])[0] if pid else None
    text, label = (paper_text(seed), seed.title) if seed else (key, key)
    if len(label) > LABEL:
        label = label[: LABEL - 1] + "…"
    candidates = [p for p in rows if seed is None or p.id != seed.id]
    ranked = rank_like(like_model(engine, settings, candidates), [text], candidates)
    return [
        (
            liked.paper,
            Why(
                f"like {liked.similarity:.2f}: {label}",
                {"similarity": round(liked.similarity, 4), "like": label},
            ),
        )
        for liked in ranked
        if liked.similarity > 0
    ]
