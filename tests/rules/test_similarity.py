"""Tests for how alike papers read (TF-IDF cosine), the measure behind "papers like these"."""

from __future__ import annotations

from datetime import UTC, datetime

from digestbot.models import Paper
from digestbot.rules.similarity import TextModel, best_by_rule, cosines, paper_text, rank_like

NOW = datetime(2026, 11, 24, tzinfo=UTC)


def paper(pid: str, title: str, abstract: str = "") -> Paper:
    return Paper(pid, title, abstract, NOW)


CORPUS = [
    paper("a", "Video diffusion models", "Denoising diffusion generates video frames."),
    paper("b", "Speech recognition at scale", "Transcribing audio with transformers."),
    paper("c", "Image diffusion distillation", "Fewer denoising steps for diffusion models."),
    paper("d", "Robot grasping in clutter", "Reinforcement learning for picking objects."),
]


def test_papers_rank_by_their_highest_cosine_to_any_seed() -> None:
    """Each paper scores its best seed, names which one, and the list is best first."""
    ranked = rank_like(TextModel(CORPUS), ["robot grasping", "diffusion models"], CORPUS)
    assert [liked.paper.id for liked in ranked][:3] in (["d", "a", "c"], ["d", "c", "a"])
    nearest = {liked.paper.id: liked.nearest for liked in ranked}
    assert nearest["d"] == 0 and nearest["a"] == 1 and nearest["c"] == 1
    assert ranked[-1].paper.id == "b" and ranked[-1].similarity == 0.0
    assert all(0.0 <= liked.similarity <= 1.0 for liked in ranked)


def test_a_paper_is_fully_alike_to_its_own_text_and_nothing_to_unrelated_words() -> None:
    """Cosine 1 for the same title and abstract; 0 when no word is shared."""
    model = TextModel(CORPUS)
    same = rank_like(
        model, ["Video diffusion models\nDenoising diffusion generates video frames."], CORPUS[:1]
    )
    assert abs(same[0].similarity - 1.0) < 1e-5
    assert rank_like(model, ["quantum chromodynamics"], CORPUS[:1])[0].similarity == 0.0


def test_an_empty_corpus_or_no_seeds_makes_nothing_alike() -> None:
    """No vocabulary (or nothing to compare with) scores every paper 0, without an error."""
    assert [liked.similarity for liked in rank_like(TextModel([]), ["x"], CORPUS)] == [0.0] * 4
    assert [liked.similarity for liked in rank_like(TextModel(CORPUS), [], CORPUS)] == [0.0] * 4
    stop_words = [paper("s", "The and of", "")]
    assert rank_like(TextModel(stop_words), ["the"], stop_words)[0].similarity == 0.0


def test_many_rules_at_once_agree_with_one_rule_at_a_time() -> None:
    """The batched best cosine per rule equals rank_like's answer for each rule alone."""
    model = TextModel(CORPUS)
    rules = [["robot grasping", "diffusion models"], ["speech"], ["video", "audio", "robot"]]
    seeds = [seed for rule in rules for seed in rule]
    starts = [0, 2, 3]
    papers = model.vectors([paper_text(p) for p in CORPUS])
    batch = best_by_rule(cosines(papers, model.vectors(seeds)), starts)
    assert batch.shape == (4, 3)
    distinct = sorted(set(seeds))
    shared = best_by_rule(
        cosines(papers, model.vectors(distinct)), starts, [distinct.index(s) for s in seeds]
    )
    assert (shared == batch).all()
    for r, rule in enumerate(rules):
        alone = {liked.paper.id: liked.similarity for liked in rank_like(model, rule, CORPUS)}
        for i, p in enumerate(CORPUS):
            assert abs(batch[i, r] - alone[p.id]) < 1e-6
