"""Rules stage (pure): decide which papers each subscriber gets this time."""

from __future__ import annotations

from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta

from digestbot.models import RECOMMENDED, Digest, DigestItem, Match, Paper, Subscriber
from digestbot.rules import learning
from digestbot.rules.learning import Taste
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.matching import rank_key
from digestbot.rules.similarity import Vectorizer


def window_start(
    last_decided_at: datetime | None,
    now: datetime,
    first_hours: float,
    joined: datetime | None = None,
) -> datetime:
    """Papers first seen after this moment are new to the subscriber.

    After a digest (or a scheduled period that found nothing), that is when it was decided.
    A newcomer looks back `first_hours`, or to when they joined if that is earlier (their
    first scheduled digest may come days later), so they get recent papers without history.
    """
    if last_decided_at is not None:
        return last_decided_at
    start = now - timedelta(hours=first_hours)
    return min(start, joined) if joined is not None else start


class DigestBuilder:
    """Builds digests for many subscribers over one batch of candidate papers."""

    def __init__(self, papers: Sequence[Paper], model: Vectorizer | None = None) -> None:
        self.index = PaperIndex(papers, model)
        self.matcher = Matcher(self.index)
        self._bit = {p.id: 1 << i for i, p in enumerate(self.index.papers)}
        self._seen_after: dict[datetime, int] = {}

    def _newer_than(self, since: datetime) -> int:
        if since not in self._seen_after:
            mask = 0
            for i, paper in enumerate(self.index.papers):
                if paper.first_seen > since:
                    mask |= 1 << i
            self._seen_after[since] = mask
        return self._seen_after[since]

    def build(
        self,
        subscriber: Subscriber,
        *,
        since: datetime,
        already_sent: Collection[str],
        now: datetime,
        period_key: str,
        carried: Collection[str] = (),
        taste: Taste | None = None,
    ) -> Digest:
        """The subscriber's digest: matched papers first seen after `since`, or `carried` over
        from their last digest, never sent to them, ranked best first and capped at their
        `max_papers`, whatever the papers' publication dates. The matched papers the cap
        keeps out are the digest's `left_out`. With a `taste` learnt from their votes, it
        ranks the matches and recommends papers no rule chose (see `_by_taste`)."""
        within = self._newer_than(since)
        for paper_id in carried:
            within |= self._bit.get(paper_id, 0)
        for paper_id in already_sent:
            within &= ~self._bit.get(paper_id, 0)
        if taste is not None:
            return self._by_taste(subscriber, taste, within, now, period_key)
        kept, total = self.matcher.top(subscriber, within, subscriber.max_papers)
        left_out: tuple[str, ...] = ()
        if total > len(kept):
            rest = self.matcher.subscriber_mask(subscriber) & within
            for paper, _ in kept:
                rest &= ~self._bit[paper.id]
            left_out = tuple(self.index.papers[i].id for i in self.index.bits(rest))
        return Digest(
            subscriber=subscriber,
            items=tuple(DigestItem(p, m) for p, m in kept),
            generated_at=now,
            period_key=period_key,
            left_out=left_out,
        )

    def _by_taste(
        self, subscriber: Subscriber, taste: Taste, within: int, now: datetime, period_key: str
    ) -> Digest:
        """The matches ranked by the reader's taste (the model's probability of an up vote,
        then the rule score), capped at `max_papers`; then up to `recommend` papers of the
        same window that no rule chose and the taste rates above even, each saying which
        paper it reads like that the reader liked."""
        matched = self.matcher.subscriber_mask(subscriber) & within
        found = self.matcher.matches(subscriber, matched)
        ranked = learning.rerank(taste, [(p, m.score) for p, m in found])
        why = {p.id: m for p, m in found}
        # The score shows the order: 1000 x the probability (to the hundredth), then the rules.
        items = [
            DigestItem(
                r.paper, replace(why[r.paper.id], score=_taste_score(r.probability, r.score))
            )
            for r in ranked[: subscriber.max_papers]
        ]
        left_out = tuple(r.paper.id for r in ranked[subscriber.max_papers :])
        if subscriber.recommend:
            others = [self.index.papers[i] for i in self.index.bits(within & ~matched)]
            extra = []
            for r in learning.recommend(taste, others, why, subscriber.recommend):
                reason = f"like {r.nearest.title} ({r.similarity:.2f}), which you liked"
                score = _taste_score(r.probability, 0.0)
                extra.append(DigestItem(r.paper, Match((RECOMMENDED,), (), (), score, (reason,))))
            # In the order the email shows them, so every report lists them alike.
            items += sorted(extra, key=lambda item: rank_key(item.paper, item.match))
        return Digest(subscriber, tuple(items), now, period_key, left_out=left_out)


def _taste_score(probability: float, rule_score: float) -> float:
    return round(1000 * round(probability, 2) + rule_score, 2)


def build_digest(
    subscriber: Subscriber,
    papers: Sequence[Paper],
    *,
    since: datetime,
    already_sent: Collection[str],
    now: datetime,
    period_key: str,
    carried: Collection[str] = (),
) -> Digest:
    """One subscriber's digest over `papers` (see DigestBuilder.build)."""
    return DigestBuilder(papers).build(
        subscriber,
        since=since,
        already_sent=already_sent,
        now=now,
        period_key=period_key,
        carried=carried,
    )


def build_digests(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    *,
    since: Mapping[int, datetime],
    already_sent: Mapping[int, Collection[str]],
    now: datetime,
    period_key: str,
    carried: Mapping[int, Collection[str]] | None = None,
    model: Vectorizer | None = None,
    tastes: Mapping[int, Taste] | None = None,
    builder: DigestBuilder | None = None,
) -> Iterator[Digest]:
    """Every subscriber's digest, sharing one index and every term result; one at a time,
    so a big batch can start rendering and sending its first digests while the rest are
    still being decided. `model` is what `like:` rules compare papers with; `tastes`, by
    subscriber id, what their votes taught. A `builder` made earlier over `papers` (and
    `model`) is used instead of a new one, with the term results it already holds."""
    builder = builder or DigestBuilder(papers, model)
    tastes = tastes or {}
    for s in subscribers:
        try:
            yield builder.build(
                s,
                since=since[s.id],
                already_sent=already_sent.get(s.id, ()),
                now=now,
                period_key=period_key,
                carried=(carried or {}).get(s.id, ()),
                taste=tastes.get(s.id),
            )
        except MemoryError:
            raise
        except Exception as exc:
            # One subscriber's data must not stop everyone's digest: theirs fails, with why.
            problem = f"could not decide this digest: {exc.__class__.__name__}: {exc}"
            yield Digest(s, (), now, period_key, problem=problem)
