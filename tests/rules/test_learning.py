"""Tests for ranking that learns from a reader's votes (logistic regression over TF-IDF)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from digestbot.models import Paper
from digestbot.rules import learning
from digestbot.rules.learning import recommend, rerank, score_all, train, train_all
from digestbot.rules.similarity import TextModel

NOW = datetime(2026, 11, 24, tzinfo=UTC)
TASKS = ("editing", "inpainting", "super-resolution", "synthesis", "restoration", "colouring")
SETTINGS = ("meetings", "children", "accents", "podcasts", "phone calls", "lectures")


def paper(pid: str, title: str, abstract: str = "") -> Paper:
    return Paper(pid, title, abstract, NOW)


LIKED = [
    paper(f"d{i}", f"Diffusion models for image {task}", f"Denoising diffusion for {task}.")
    for i, task in enumerate(TASKS)
]
DISLIKED = [
    paper(f"s{i}", f"Speech recognition in {where}", f"Transcribing spoken audio in {where}.")
    for i, where in enumerate(SETTINGS)
]
DIFFUSION = paper("nd", "Latent diffusion for image generation", "Denoising diffusion images.")
SPEECH = paper("ns", "Streaming speech recognition", "Low-latency transcription of audio.")
ROBOTS = paper("nr", "Robot grasping in clutter", "Reinforcement learning picks objects.")
UNSEEN = [SPEECH, ROBOTS, DIFFUSION]
MODEL = TextModel([*LIKED, *DISLIKED, *UNSEEN])


def test_below_the_vote_thresholds_nothing_is_trained() -> None:
    """Fewer "up" or fewer "down" votes than asked for gives no model at all."""
    assert train(MODEL, LIKED[:4], DISLIKED) is None
    assert train(MODEL, LIKED, DISLIKED[:4]) is None
    assert train(MODEL, LIKED[:2], DISLIKED[:2], min_up=3, min_down=2) is None
    assert train(MODEL, LIKED[:3], DISLIKED[:2], min_up=3, min_down=2) is not None
    assert train(TextModel([]), LIKED, DISLIKED) is None


def test_unseen_papers_like_the_liked_ones_score_above_those_like_the_disliked() -> None:
    """A new diffusion paper is likely an "up" (above 0.5), a new speech paper unlikely."""
    taste = train(MODEL, LIKED, DISLIKED)
    assert taste is not None
    speech, robots, diffusion = taste.score(UNSEEN)
    assert diffusion > 0.5 > speech
    assert diffusion > robots > speech
    assert all(0.0 < p < 1.0 for p in (speech, robots, diffusion))


def test_rerank_moves_liked_looking_papers_up_and_keeps_rule_scores() -> None:
    """The model's probability orders the rule's picks; each keeps its rule score."""
    taste = train(MODEL, LIKED, DISLIKED)
    assert taste is not None
    ranked = rerank(taste, [(SPEECH, 3.0), (ROBOTS, 2.0), (DIFFUSION, 1.0)])
    assert [(item.paper.id, item.score) for item in ranked] == [
        ("nd", 1.0),
        ("nr", 2.0),
        ("ns", 3.0),
    ]
    assert ranked[0].probability > ranked[-1].probability


def test_papers_the_model_rates_alike_keep_their_order_by_rule_score() -> None:
    """Ties in the model's probability (to the hundredth) fall back to the rule score."""
    taste = train(MODEL, LIKED, DISLIKED)
    assert taste is not None
    twin = paper("nd2", DIFFUSION.title, DIFFUSION.abstract)
    ranked = rerank(taste, [(DIFFUSION, 1.0), (twin, 4.0)])
    assert [item.paper.id for item in ranked] == ["nd2", "nd"]


def test_recommend_leaves_out_selected_and_voted_papers_and_names_the_nearest_liked() -> None:
    """Only unselected, unvoted papers above 0.5 are offered, each with its nearest liked."""
    taste = train(MODEL, LIKED, DISLIKED)
    assert taste is not None
    (found,) = recommend(taste, [*UNSEEN, *LIKED], exclude_ids=set(), n=5)
    assert found.paper.id == "nd" and found.probability > 0.5
    assert (found.nearest, found.similarity) == taste.nearest_liked(DIFFUSION)
    assert found.nearest in LIKED and found.similarity > 0.0
    assert recommend(taste, UNSEEN, exclude_ids={"nd"}, n=5) == []


def test_recommend_offers_nothing_at_or_below_one_half() -> None:
    """A paper that shares words with a liked one but reads mostly like the disliked ones
    (probability under 0.5) is not recommended."""
    taste = train(MODEL, LIKED, DISLIKED)
    assert taste is not None
    mixed = paper("nm", "Speech recognition with diffusion", "Transcribing spoken audio.")
    (probability,) = taste.score([mixed])
    assert probability < 0.5 and taste.nearest_liked(mixed)[1] > 0.0
    assert recommend(taste, [mixed], exclude_ids=(), n=5) == []


def test_recommend_gives_at_most_n_best_first() -> None:
    """With several candidates above 0.5, the n most likely come, most likely first."""
    taste = train(MODEL, LIKED, DISLIKED)
    assert taste is not None
    weaker = paper("nw", "Image diffusion", "")
    candidates = [weaker, DIFFUSION, SPEECH]
    both = recommend(taste, candidates, exclude_ids=(), n=5)
    assert len(both) == 2 and both[0].probability >= both[1].probability
    assert recommend(taste, candidates, exclude_ids=(), n=1) == both[:1]
    assert recommend(taste, candidates, exclude_ids=(), n=0) == []


def test_a_paper_sharing_no_word_with_a_liked_one_is_never_recommended() -> None:
    """A paper the intercept alone lifts above 0.5 has no liked paper to name as the reason,
    so it is not recommended."""
    critic = train(MODEL, DISLIKED, LIKED)  # likes speech, dislikes diffusion
    assert critic is not None
    (robots,) = critic.score([ROBOTS])
    assert robots > 0.5 and critic.nearest_liked(ROBOTS)[1] == 0.0
    assert [r.paper.id for r in recommend(critic, UNSEEN, (), n=5)] == ["ns"]


def test_the_same_votes_give_the_same_model_in_any_order() -> None:
    """Training twice, or on the votes shuffled, gives identical scores and reasons."""
    first = train(MODEL, LIKED, DISLIKED)
    again = train(MODEL, LIKED[::-1], DISLIKED[::-1])
    assert first is not None and again is not None
    assert first.score(UNSEEN) == again.score(UNSEEN)
    assert first.nearest_liked(DIFFUSION) == again.nearest_liked(DIFFUSION)
    assert recommend(first, UNSEEN, (), 5) == recommend(again, UNSEEN, (), 5)


def test_training_many_readers_at_once_matches_training_each_alone() -> None:
    """`train_all` skips readers short of votes and unknown papers, and `score_all`
    scores every reader in one product with the same numbers as each alone."""
    papers = {p.id: p for p in [*LIKED, *DISLIKED, *UNSEEN]}
    fan = {p.id: "up" for p in LIKED} | {p.id: "down" for p in DISLIKED} | {"gone": "up"}
    critic = {p.id: "down" for p in LIKED} | {p.id: "up" for p in DISLIKED}
    few = {"d0": "up", "s0": "down"}
    tastes = train_all(MODEL, {7: fan, 8: critic, 9: few}, papers)
    assert sorted(tastes) == [7, 8]
    alone = train(MODEL, LIKED, DISLIKED)
    assert alone is not None
    scores = score_all([tastes[7], tastes[8]], UNSEEN)
    assert scores.shape == (3, 2)
    assert [round(float(s), 5) for s in scores[:, 0]] == [round(s, 5) for s in alone.score(UNSEEN)]
    speech, _, diffusion = scores[:, 1]
    assert speech > 0.5 > diffusion


def test_scoring_readers_in_slices_gives_the_same_scores(monkeypatch: pytest.MonkeyPatch) -> None:
    """`score_all` scores a slice of readers per product; the slicing changes no number."""
    fan = train(MODEL, LIKED, DISLIKED)
    critic = train(MODEL, DISLIKED, LIKED)
    assert fan is not None and critic is not None
    whole = score_all([fan, critic, fan], UNSEEN)
    monkeypatch.setattr(learning, "SLICE", 2)
    assert (score_all([fan, critic, fan], UNSEEN) == whole).all()
    assert score_all([], UNSEEN).shape == (3, 0) and score_all([fan], []).shape == (0, 1)
