"""Tests for digests that learn from votes: re-ranked matches and `recommend:` papers."""

from __future__ import annotations

from datetime import datetime, timedelta

from conftest import LISTING_000
from sqlalchemy import Engine

from digestbot.ingest.load import ingest_path
from digestbot.ingest.papers import papers_seen_since
from digestbot.models import RECOMMENDED, Digest, Paper
from digestbot.rules import readers
from digestbot.rules.plan import digests_for
from digestbot.rules.subscribers import active_subscribers, sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings

FILE = (
    "subscribers:\n  - email: ada@lab.example\n    max_papers: 8\n    recommend: 3\n"
    "    rules:\n      - {name: Transformers, any: [transformer]}\n"
)


def setup(engine: Engine, clock: datetime) -> list[Paper]:
    ingest_path(engine, LISTING_000, now=clock)
    sync_subscriptions(engine, parse_subscriptions(FILE, source="s"), now=clock - timedelta(days=1))
    return papers_seen_since(engine, None)


def vote(engine: Engine, papers: list[Paper], ups: int, downs: int, now: datetime) -> set[str]:
    """Up votes on papers about diffusion or image generation, down votes on the others."""
    (reader,) = active_subscribers(engine)
    alike = [p for p in papers if "diffusion" in (p.title + p.abstract).lower()]
    other = [p for p in papers if p not in alike]
    for paper in alike[:ups]:
        readers.record_vote(engine, reader.id, paper.id, "up", digest="d", now=now)
    for paper in other[:downs]:
        readers.record_vote(engine, reader.id, paper.id, "down", digest="d", now=now)
    return {p.id for p in (*alike[:ups], *other[:downs])}


def digest(engine: Engine, settings: Settings, now: datetime) -> Digest:
    (reader,) = active_subscribers(engine)
    (made,) = digests_for(engine, settings, [reader], now=now, period_keys={reader.id: "k"})
    return made


def test_too_few_votes_change_nothing(engine: Engine, settings: Settings, clock: datetime) -> None:
    """Four votes of each kind (the default needs five) leave the digest as the rules make it."""
    papers = setup(engine, clock)
    before = digest(engine, settings, clock)
    vote(engine, papers, 4, 4, clock)
    after = digest(engine, settings, clock)
    assert [i.paper.id for i in after.items] == [i.paper.id for i in before.items]
    assert all(RECOMMENDED not in i.match.rules for i in after.items)


def test_enough_votes_rank_the_matches_and_recommend_papers_no_rule_chose(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """With five of each, the rule's papers come in the order the votes suggest (diffusion
    first) and up to `recommend` other papers follow, each naming a liked paper."""
    papers = setup(engine, clock)
    plain = digest(engine, settings, clock)
    vote(engine, papers, 5, 5, clock)
    learnt = digest(engine, settings, clock)
    chosen = [i for i in learnt.items if RECOMMENDED not in i.match.rules]
    extra = [i for i in learnt.items if RECOMMENDED in i.match.rules]
    assert len(chosen) == 8 and {i.paper.id for i in chosen} != {i.paper.id for i in plain.items}
    scores = [i.match.score for i in chosen]
    assert scores == sorted(scores, reverse=True)
    first = chosen[0].paper
    assert "diffusion" in (first.title + first.abstract).lower()
    assert 0 < len(extra) <= 3
    for item in extra:
        assert "transformer" not in (item.paper.title + item.paper.abstract).lower()
        (reason,) = item.match.similar
        assert reason.startswith("like ") and reason.endswith(", which you liked")
    assert len({i.paper.id for i in learnt.items}) == len(learnt.items)
    assert len(learnt.left_out) == len(plain.items) + len(plain.left_out) - 8


def test_a_stricter_threshold_waits_for_more_votes(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """DIGESTBOT_LEARN_MIN_VOTES raises how many votes of each kind are needed."""
    papers = setup(engine, clock)
    plain = digest(engine, settings, clock)
    vote(engine, papers, 5, 5, clock)
    strict = settings.model_copy(update={"learn_min_votes": 6})
    assert [i.paper.id for i in digest(engine, strict, clock).items] == [
        i.paper.id for i in plain.items
    ]
