"""Rules stage: plan digests over the stored state, each subscriber's new papers matched."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Engine

from digestbot.ingest import papers
from digestbot.models import Digest, Paper, Subscriber
from digestbot.rules import history, learning, readers
from digestbot.rules.digests import build_digests, window_start
from digestbot.rules.likestore import corpus_model, like_model, uses_like
from digestbot.settings import Settings


def digests_for(
    engine: Engine,
    settings: Settings,
    subscribers: Sequence[Subscriber],
    *,
    now: datetime,
    period_keys: Mapping[int, str],
) -> Iterator[Digest]:
    """The digests of `subscribers` over papers new to each since their last digest (or
    their last scheduled period, even an empty one), and the papers their last digest had
    no room for while first seen within `carry_over_days`: the database is read now, each
    digest decided when it is taken."""
    last = history.last_digests(engine)
    for sub_id, decided_at in history.last_decided(engine).items():
        last[sub_id] = max(decided_at, last.get(sub_id, decided_at))
    hours = settings.first_digest_hours
    starts = {s.id: window_start(last.get(s.id), now, hours, s.created_at) for s in subscribers}
    since = min(starts.values(), default=now)
    candidates = papers.papers_seen_since(engine, since)
    carried, older = _carried(engine, settings, {s.id for s in subscribers}, now, since)
    # What was sent of the carried papers counts too, so read history back to the oldest.
    oldest = min((p.first_seen for p in older), default=since)
    taken = history.taken_since(engine, min(since, oldest - timedelta(microseconds=1)))
    digests = build_digests(
        subscribers,
        candidates + older,
        since=starts,
        already_sent=taken,
        now=now,
        period_key="",
        carried=carried,
        **_models(engine, settings, subscribers, candidates + older),
    )
    days = settings.carry_over_days
    return (replace(d, period_key=period_keys[d.subscriber.id], carry_days=days) for d in digests)


def _models(
    engine: Engine,
    settings: Settings,
    subscribers: Sequence[Subscriber],
    candidates: Sequence[Paper],
) -> dict[str, Any]:
    """What `like:` rules and votes need, made only when someone has them: what papers are
    compared by (see likestore.like_model), and each subscriber's taste learnt from their
    votes (on the TF-IDF model of the stored papers)."""
    least = settings.learn_min_votes
    ids = {s.id for s in subscribers}
    votes = {k: v for k, v in readers.votes_by_subscriber(engine).items() if k in ids}
    voters = {
        k: v
        for k, v in votes.items()
        if sum(x == "up" for x in v.values()) >= least
        and sum(x == "down" for x in v.values()) >= least
    }
    made: dict[str, Any] = {}
    if uses_like(subscribers):
        made["model"] = like_model(engine, settings, candidates)
    if voters:
        text_model = corpus_model(engine, settings.like_refit_share)
        voted = papers.papers_by_id(engine, {pid for v in voters.values() for pid in v})
        by_id = {p.id: p for p in voted}
        made["tastes"] = learning.train_all(text_model, voters, by_id, min_up=least, min_down=least)
    return made


def _carried(
    engine: Engine, settings: Settings, ids: set[int], now: datetime, since: datetime
) -> tuple[dict[int, list[str]], list[Paper]]:
    """Per subscriber, the papers left out of their last digest that are still young enough
    to come again, and those of them first seen before `since` (not among the candidates)."""
    if not settings.carry_over_days:
        return {}, []
    left = {k: v for k, v in history.left_out_of_last_digests(engine).items() if k in ids}
    limit = now - timedelta(days=settings.carry_over_days)
    young = {
        p.id: p
        for p in papers.papers_by_id(engine, {pid for v in left.values() for pid in v})
        if p.first_seen > limit
    }
    carried = {k: [pid for pid in v if pid in young] for k, v in left.items()}
    return carried, [p for p in young.values() if p.first_seen <= since]
