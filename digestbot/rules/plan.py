"""Rules stage: plan digests over the stored state, each subscriber's new papers matched."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from sqlalchemy import Engine

from digestbot.ingest import papers
from digestbot.models import Digest, Paper, Subscriber
from digestbot.rules import history, learning, readers
from digestbot.rules.digests import DigestBuilder, build_digests, window_start
from digestbot.rules.likestore import corpus_model, like_model, uses_like
from digestbot.settings import Settings


def digests_for(
    engine: Engine,
    settings: Settings,
    subscribers: Sequence[Subscriber],
    *,
    now: datetime,
    period_keys: Mapping[int, str],
    span: history.Span = None,
    shared: RoundPapers | None = None,
) -> Iterator[Digest]:
    """The digests of `subscribers` over papers new to each since their last digest (or
    their last scheduled period, even an empty one), and the papers their last digest had
    no room for while first seen within `carry_over_days`: the database is read now, each
    digest decided when it is taken. A worker's slice passes its `span` of subscriber ids
    (every read is of those subscribers alone) and the papers it `shared` with its other
    slices of the same round."""
    last = history.last_digests(engine, span)
    for sub_id, decided_at in history.last_decided(engine, span).items():
        last[sub_id] = max(decided_at, last.get(sub_id, decided_at))
    hours = settings.first_digest_hours
    starts = {s.id: window_start(last.get(s.id), now, hours, s.created_at) for s in subscribers}
    since = min(starts.values(), default=now)
    carried, older = _carried(engine, settings, {s.id for s in subscribers}, now, since, span)
    # What was sent of the carried papers counts too, so read history back to the oldest.
    oldest = min((p.first_seen for p in older), default=since)
    taken = history.taken_since(engine, min(since, oldest - timedelta(microseconds=1)), span)
    like = uses_like(subscribers)
    if shared is not None:  # a worker's slice: the round's papers, indexed once
        candidates: list[Paper] = []
        builder = shared.builder(engine, settings, since=since, older=older, like=like)
        model = None
    else:
        candidates = papers.papers_seen_since(engine, since) + older
        builder = None
        model = like_model(engine, settings, candidates) if like else None
    digests = build_digests(
        subscribers,
        candidates,
        since=starts,
        already_sent=taken,
        now=now,
        period_key="",
        carried=carried,
        model=model,
        tastes=_tastes(engine, settings, subscribers, span),
        builder=builder,
    )
    days = settings.carry_over_days
    return (replace(d, period_key=period_keys[d.subscriber.id], carry_days=days) for d in digests)


def _tastes(
    engine: Engine, settings: Settings, subscribers: Sequence[Subscriber], span: history.Span
) -> dict[int, learning.Taste] | None:
    """Each subscriber's taste learnt from their votes (on the TF-IDF model of the stored
    papers), for those with enough votes either way; None when nobody has."""
    least = settings.learn_min_votes
    ids = {s.id for s in subscribers}
    votes = {k: v for k, v in readers.votes_by_subscriber(engine, span).items() if k in ids}
    voters = {
        k: v
        for k, v in votes.items()
        if sum(x == "up" for x in v.values()) >= least
        and sum(x == "down" for x in v.values()) >= least
    }
    if not voters:
        return None
    text_model = corpus_model(engine, settings.like_refit_share)
    voted = papers.papers_by_id(engine, {pid for v in voters.values() for pid in v})
    by_id = {p.id: p for p in voted}
    return learning.train_all(text_model, voters, by_id, min_up=least, min_down=least)


class RoundPapers:
    """The papers of one round (first seen up to its `at`) and their match index, loaded
    once by a worker and shared by every slice it takes of that round; loaded again only
    for a slice that reaches further back, or needs papers left out of older digests."""

    def __init__(self, at: datetime) -> None:
        self.at = at
        self.since: datetime | None = None
        self.papers: dict[str, Paper] = {}
        self.like = False
        self._builder: DigestBuilder | None = None
        self.loads = 0  # how many times the papers were read and indexed

    def builder(
        self,
        engine: Engine,
        settings: Settings,
        *,
        since: datetime,
        older: Sequence[Paper],
        like: bool,
    ) -> DigestBuilder:
        """The index over the round's papers first seen after `since`, plus `older`."""
        fresh = (
            self._builder is not None
            and self.since is not None
            and self.since <= since
            and all(p.id in self.papers for p in older)
            and (self.like or not like)
        )
        if fresh and self._builder is not None:
            return self._builder
        self.since = since if self.since is None else min(since, self.since)
        found = papers.papers_seen_since(engine, self.since)
        kept = {p.id: p for p in found if p.first_seen <= self.at}
        self.papers = self.papers | kept | {p.id: p for p in older}
        self.like = self.like or like
        listed = sorted(self.papers.values(), key=lambda p: (-p.first_seen.timestamp(), p.id))
        model = like_model(engine, settings, listed) if self.like else None
        self._builder = DigestBuilder(listed, model)
        self.loads += 1
        return self._builder


def _carried(
    engine: Engine,
    settings: Settings,
    ids: set[int],
    now: datetime,
    since: datetime,
    span: history.Span = None,
) -> tuple[dict[int, list[str]], list[Paper]]:
    """Per subscriber, the papers left out of their last digest that are still young enough
    to come again, and those of them first seen before `since` (not among the candidates)."""
    if not settings.carry_over_days:
        return {}, []
    left = {k: v for k, v in history.left_out_of_last_digests(engine, span).items() if k in ids}
    limit = now - timedelta(days=settings.carry_over_days)
    young = {
        p.id: p
        for p in papers.papers_by_id(engine, {pid for v in left.values() for pid in v})
        if p.first_seen > limit
    }
    carried = {k: [pid for pid in v if pid in young] for k, v in left.items()}
    return carried, [p for p in young.values() if p.first_seen <= since]
