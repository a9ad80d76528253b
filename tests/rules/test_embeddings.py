"""Tests for dense embeddings in `like:` rules: a tiny model2vec model built here, offline."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from model2vec import StaticModel
from sqlalchemy import Engine
from sqlmodel import Session, select
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers

from digestbot.errors import ConfigError
from digestbot.ingest.papers import ingest, papers_seen_since
from digestbot.models import ListedPaper, Listing
from digestbot.rules.embedding import EmbeddingModel
from digestbot.rules.plan import digests_for
from digestbot.rules.subscribers import active_subscribers, sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.tables import PaperVectorRow

# Three directions of meaning; any other word is unknown to the model.
MEANINGS = {
    "diffusion": 0, "image": 0, "denoising": 0, "pixels": 0,
    "graph": 1, "node": 1, "molecules": 1,
    "speech": 2, "audio": 2, "spoken": 2,
}  # fmt: skip
PAPERS = (
    ListedPaper("Denoising diffusion for pixels", "Image denoising diffusion."),
    ListedPaper("Node messages on graphs", "Graph node molecules."),
    ListedPaper("Spoken audio at scale", "Speech audio."),
)


@pytest.fixture
def tiny_model(tmp_path: Path) -> str:
    """A model2vec model whose words point along three axes, saved to a folder."""
    vocab = {"[PAD]": 0, "[UNK]": 1, **{w: i + 2 for i, w in enumerate(MEANINGS)}}
    tokenizer = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tokenizer.normalizer = normalizers.Lowercase()
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    vectors = np.zeros((len(vocab), 3), dtype=np.float32)
    for word, axis in MEANINGS.items():
        vectors[vocab[word], axis] = 1.0
    folder = tmp_path / "tiny-model"
    StaticModel(vectors, tokenizer, normalize=True).save_pretrained(folder)
    return str(folder)


def test_texts_become_unit_vectors_and_unknown_words_nothing(tiny_model: str) -> None:
    """Known words give a unit vector along their meaning; a text of unknown words is 0."""
    made = EmbeddingModel(tiny_model).vectors(
        ["diffusion image", "graph", "quantum chromodynamics"]
    )
    assert np.allclose(made[0], [1, 0, 0]) and np.allclose(made[1], [0, 1, 0])
    assert not made[2].any()


def test_a_model_that_cannot_be_loaded_is_one_configuration_error(tmp_path: Path) -> None:
    """A missing folder is named as such; a folder that holds no model says it cannot be
    loaded, in one line."""
    missing = tmp_path / "no-model-here"
    with pytest.raises(ConfigError, match=f"folder {missing} does not exist"):
        EmbeddingModel(str(missing))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match=r"DIGESTBOT_EMBEDDING_MODEL .*cannot load it") as caught:
        EmbeddingModel(str(tmp_path / "empty"))
    assert "\n" not in str(caught.value).split(" (give")[0]


def test_like_rules_compare_by_the_embeddings_and_each_paper_is_embedded_once(
    engine: Engine, settings: Settings, clock: datetime, tiny_model: str
) -> None:
    """A seed about graphs chooses the graph paper though they share no word; each
    candidate's vector is stored, and a stored vector is used as it is, not computed again."""
    ingest(engine, Listing("page", PAPERS), now=clock)
    text = (
        "subscribers:\n  - email: ada@lab.example\n    rules:\n"
        "      - {name: Graphs, like: [message passing on molecular graph structures], top: 1}\n"
    )
    sync_subscriptions(engine, parse_subscriptions(text, source="s"), now=clock - timedelta(1))
    embedded = settings.model_copy(update={"embedding_model": tiny_model})
    (reader,) = active_subscribers(engine)

    def chosen() -> list[str]:
        (made,) = digests_for(engine, embedded, [reader], now=clock, period_keys={reader.id: "k"})
        return [item.paper.title for item in made.items]

    assert chosen() == ["Node messages on graphs"]
    by_title = {p.title: p.id for p in papers_seen_since(engine, None)}
    with Session(engine) as session:
        rows = {row.paper_id: row for row in session.exec(select(PaperVectorRow))}
        assert len(rows) == 3 and {row.model for row in rows.values()} == {tiny_model}
        # The graph paper's stored vector now says "audio": were it computed again, the
        # graph seed would choose it as before.
        graph = rows[by_title["Node messages on graphs"]]
        graph.vector = rows[by_title["Spoken audio at scale"]].vector
        session.add(graph)
        session.commit()
    assert chosen() == []
