"""CLI: the send view, what `send-now` reports per subscriber, as text or as JSON.

A dry run and a real run print the same JSON schema (see `subscriber_json`): a list with one
object per subscriber; only the values of `status` differ, and a dry run's `delivered_to`
is always null.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from digestbot import service
from digestbot.cli.common import out
from digestbot.cli.paperview import fit
from digestbot.compose.words import plural
from digestbot.delivery import outbox
from digestbot.models import Digest


def print_plan(
    digests: Sequence[Digest],
    waiting: Mapping[int, Sequence[outbox.Waiting]],
    *,
    now: datetime,
    as_json: bool,
) -> None:
    """Per subscriber, what a send now would newly decide and what is queued already."""
    if as_json:
        plan = [_planned_json(d, waiting.get(d.subscriber.id, ()), now=now) for d in digests]
        out.print_json(json.dumps(plan, ensure_ascii=False))
        return
    width = out.width
    for digest in digests:
        head = f"{digest.subscriber.email}: {plural(len(digest.items), 'new paper')}"
        if digest.dropped:
            head += f" ({digest.dropped} more matched beyond max_papers)"
        if digest.problem:
            head += f" (failed: {digest.problem})"
        out.print(head, markup=False)
        for item in digest.items:
            out.print(fit(f"  - {' '.join(item.paper.title.split())}", width), markup=False)
        for row in waiting.get(digest.subscriber.id, ()):
            out.print(f"  queued: {queued_label(row)}", markup=False)


def print_sent_json(
    outcomes: Sequence[service.Outcome], waiting: Mapping[int, Sequence[outbox.Waiting]]
) -> None:
    """A real run's report, in the dry run's schema: `waiting` is what is still queued."""
    report = [
        subscriber_json(
            email=o.email,
            status=o.status,
            chosen=o.chosen,
            left_out=o.left_out,
            delivered_to=o.where if o.status == "sent" else None,
            error=None if o.status in ("sent", "nothing new") else o.where or None,
            waiting=waiting.get(o.subscriber_id, ()),
        )
        for o in outcomes
    ]
    out.print_json(json.dumps(report, ensure_ascii=False))


def _planned_json(
    digest: Digest, waiting: Sequence[outbox.Waiting], *, now: datetime
) -> dict[str, Any]:
    due = any(row.next_attempt_at is None or row.next_attempt_at <= now for row in waiting)
    status = "failed" if digest.problem else "would send" if digest.items or due else "nothing new"
    return subscriber_json(
        email=digest.subscriber.email,
        status=status,
        chosen=service.chosen(digest),
        left_out=digest.dropped,
        delivered_to=None,
        error=digest.problem,
        waiting=waiting,
    )


def subscriber_json(
    *,
    email: str,
    status: str,
    chosen: Sequence[service.Chosen],
    left_out: int,
    delivered_to: str | None,
    error: str | None,
    waiting: Sequence[outbox.Waiting],
) -> dict[str, Any]:
    """One subscriber in `send-now --json`, dry run or not: `papers` are the papers newly
    decided for them, `left_out` how many more matched beyond their max_papers, `queued`
    their emails waiting to be sent (before a dry run; after a real one)."""
    return {
        "email": email,
        "status": status,
        "papers": [
            {
                "id": c.id,
                "title": c.title,
                "score": c.score,
                "matched": list(c.matched),
                "rules": list(c.rules),
                "similar": list(c.similar),
            }
            for c in chosen
        ],
        "left_out": left_out,
        "delivered_to": delivered_to,
        "error": error,
        "queued": [
            {
                "kind": row.kind,
                "status": row.status,
                "papers": [{"id": pid, "title": title} for pid, title in row.papers],
                "next_attempt_at": stamp(row.next_attempt_at),
            }
            for row in waiting
        ],
    }


def queued_label(row: outbox.Waiting) -> str:
    """`retry digest, 5 papers, next attempt 2026-05-04 08:15:00 UTC` (or `pending …`)."""
    label = f"{row.status} {row.kind}, {plural(len(row.papers), 'paper')}"
    if row.next_attempt_at:
        label += f", next attempt {stamp(row.next_attempt_at)}"
    return label


def stamp(moment: datetime | None) -> str | None:
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC") if moment else None
