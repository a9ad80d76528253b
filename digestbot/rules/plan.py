"""Rules stage: plan digests over the stored state, each subscriber's new papers matched."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from datetime import datetime

from sqlalchemy import Engine

from digestbot.ingest import papers
from digestbot.models import Digest, Subscriber
from digestbot.rules import history
from digestbot.rules.digests import build_digests, window_start
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
    their last scheduled period, even an empty one): the database is read now, each digest
    decided when it is taken."""
    last = history.last_digests(engine)
    for sub_id, decided_at in history.last_decided(engine).items():
        last[sub_id] = max(decided_at, last.get(sub_id, decided_at))
    hours = settings.first_digest_hours
    starts = {s.id: window_start(last.get(s.id), now, hours, s.created_at) for s in subscribers}
    since = min(starts.values(), default=now)
    candidates = papers.papers_seen_since(engine, since)
    taken = history.taken_since(engine, since)
    digests = build_digests(
        subscribers, candidates, since=starts, already_sent=taken, now=now, period_key=""
    )
    return (replace(d, period_key=period_keys[d.subscriber.id]) for d in digests)
