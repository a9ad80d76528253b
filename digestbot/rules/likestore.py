"""Rules stage (store edge): what `like:` rules compare with: their seeds resolved against
the stored papers, the TF-IDF model fitted on the stored papers (refitted as they grow), and
the papers' stored embeddings when an embedding model is set.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from digestbot.ingest import papers
from digestbot.ingest.links import clean_arxiv_id
from digestbot.ingest.textnorm import normalise_title
from digestbot.models import Paper, Rule, Seed, Subscriber
from digestbot.rules.embedding import EmbeddingModel, Precomputed
from digestbot.rules.likeindex import has_like
from digestbot.rules.similarity import TextModel, Vectorizer, paper_text
from digestbot.settings import Settings
from digestbot.store.engine import write_session
from digestbot.store.tables import PaperRow, PaperVectorRow

# The model fitted on each database's stored papers (by URL), with how many there were:
# fitting reads every abstract, so it is redone only when the store has grown enough.
_FITTED: dict[str, tuple[int, TextModel]] = {}


def uses_like(subscribers: Sequence[Subscriber]) -> bool:
    """Whether any rule (or topic) of the subscribers has a `like:` condition."""
    return any(has_like(s) for s in subscribers)


def corpus_model(engine: Engine, refit_share: float) -> TextModel:
    """The TF-IDF model of the stored papers, refitted once they number `refit_share` more
    than when it was last fitted."""
    with Session(engine) as session:
        count = session.exec(select(func.count()).select_from(PaperRow)).one()
    key = str(engine.url)
    fitted = _FITTED.get(key)
    # Fewer papers than it was fitted on: another database at the same place, fitted anew.
    if fitted is None or not fitted[0] or not fitted[0] <= count <= fitted[0] * (1 + refit_share):
        fitted = (count, TextModel(papers.papers_seen_since(engine, None)))
        _FITTED[key] = fitted
    return fitted[1]


class SeedBook:
    """The stored papers a seed may name: by id, arXiv id or exact (normalised) title."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        with Session(engine) as session:
            rows = session.exec(select(PaperRow.id, PaperRow.arxiv_id, PaperRow.norm_title))
            self.ids: dict[str, str] = {}
            for pid, arxiv_id, title in rows:
                self.ids.setdefault(pid, pid)
                if arxiv_id:
                    self.ids.setdefault(arxiv_id, pid)
                self.ids.setdefault(f"title:{title}", pid)

    def named(self, raw: str) -> str | None:
        """The stored paper's id that `raw` names, if any: by id, arXiv id or title (case
        and punctuation aside), else the one paper whose id starts with it (the short ids
        `papers list` prints)."""
        text = raw.strip()
        found = (
            self.ids.get(text)
            or self.ids.get(clean_arxiv_id(text) or "")
            or self.ids.get(f"title:{normalise_title(text)}")
        )
        if found is None and text:
            started = papers.papers_named(self.engine, text)
            found = started[0].id if len(started) == 1 else None
        return found

    def problem(self, raw: str) -> str | None:
        """Why `raw` cannot be a seed: an arXiv id no stored paper has (a text never fails)."""
        text = raw.strip()
        if clean_arxiv_id(text) and self.named(text) is None and " " not in text:
            return (
                f"arXiv id {text} is not a stored paper (`digestbot subscriptions sync` fetches"
                " it from arXiv while lookups are on; or ingest it, or write its title or a"
                " description instead)"
            )
        return None

    def resolve(self, rule: Rule) -> Rule:
        """`rule` (and its topics) with each seed naming a stored paper given that paper's
        title and abstract; other seeds are texts as they are."""
        seeds = tuple(self._seed(seed.label) for seed in rule.like)
        topics = tuple(self.resolve(topic) for topic in rule.topics)
        return replace(rule, like=seeds, topics=topics)

    def _seed(self, raw: str) -> Seed:
        pid = self.named(raw)
        if pid is None:
            return Seed(raw, raw)
        (paper,) = papers.papers_by_id(self.engine, [pid])
        return Seed(paper.title, paper_text(paper), paper.id)


def unstored_ids(book: SeedBook, rules: Sequence[Rule]) -> list[str]:
    """The `like:` seeds of `rules` (and their topics) that are arXiv ids of no stored paper."""
    seeds = {seed.label for rule in rules for r in (rule, *rule.topics) for seed in r.like}
    return sorted(raw.strip() for raw in seeds if book.problem(raw))


_LOADED: dict[str, EmbeddingModel] = {}  # embedding models by name, loaded once a process


def like_model(engine: Engine, settings: Settings, candidates: Sequence[Paper]) -> Vectorizer:
    """What `like:` rules compare papers by: the embedding model of
    DIGESTBOT_EMBEDDING_MODEL, with the candidates' vectors read from the store (those
    missing computed and stored, once per paper), else TF-IDF of the stored papers."""
    name = settings.embedding_model
    if not name:
        return corpus_model(engine, settings.like_refit_share)
    model = _LOADED.get(name) or _LOADED.setdefault(name, EmbeddingModel(name))
    ids = [p.id for p in candidates]
    with Session(engine) as session:
        query = select(PaperVectorRow).where(
            PaperVectorRow.model == name, col(PaperVectorRow.paper_id).in_(ids)
        )
        known = {row.paper_id: np.frombuffer(row.vector, np.float32) for row in session.exec(query)}
    missing = [p for p in candidates if p.id not in known]
    if missing:
        made = model.vectors([paper_text(p) for p in missing])
        with write_session(engine) as session:
            for paper, vector in zip(missing, made, strict=True):
                row = PaperVectorRow(paper_id=paper.id, model=name, vector=vector.tobytes())
                session.merge(row)
                known[paper.id] = vector
    return Precomputed(model, known)
