"""Subscribers storage: sync the validated subscriptions into SQLite and read them back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, col, delete, select

from digestbot.db import RuleRow, SubscriberRow
from digestbot.models import Rule, Subscriber
from digestbot.subscriptions import RuleSpec, SubscriptionsFile


@dataclass
class SyncResult:
    """Which addresses a sync added, changed, deactivated, reactivated or left alone."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def sync_subscriptions(engine: Engine, spec: SubscriptionsFile, *, now: datetime) -> SyncResult:
    """Make the database match `spec` in one transaction; removed subscribers are deactivated."""
    result = SyncResult()
    with Session(engine) as session, session.begin():
        rows = {row.email: row for row in session.exec(select(SubscriberRow))}
        wanted = {s.email for s in spec.subscribers}
        for sub in spec.subscribers:
            max_papers = sub.max_papers or spec.defaults.max_papers
            bodies = [_rule_body(rule) for rule in sub.rules]
            row = rows.get(sub.email)
            if row is None:
                row = SubscriberRow(email=sub.email, created_at=now, updated_at=now)
                result.added.append(sub.email)
            elif not row.active:
                result.reactivated.append(sub.email)
            elif (
                row.name != sub.name
                or row.max_papers != max_papers
                or _bodies(session, row) != bodies
            ):
                result.changed.append(sub.email)
            else:
                result.unchanged.append(sub.email)
                continue
            row.name, row.max_papers, row.active, row.updated_at = sub.name, max_papers, True, now
            session.add(row)
            session.flush()
            _replace_rules(session, row, sub.rules, bodies)
        for email, row in rows.items():
            if email not in wanted and row.active:
                row.active, row.updated_at = False, now
                session.add(row)
                result.deactivated.append(email)
    return result


def _rule_body(rule: RuleSpec) -> dict[str, Any]:
    return {"name": rule.display_name(), "any": rule.any, "all": rule.all, "none": rule.none}


def _bodies(session: Session, row: SubscriberRow) -> list[dict[str, Any]]:
    query = select(RuleRow).where(RuleRow.subscriber_id == row.id).order_by(col(RuleRow.position))
    return [json.loads(rule.body) for rule in session.exec(query)]


def _replace_rules(
    session: Session, row: SubscriberRow, rules: Sequence[RuleSpec], bodies: list[dict[str, Any]]
) -> None:
    session.exec(delete(RuleRow).where(col(RuleRow.subscriber_id) == row.id))
    assert row.id is not None
    for position, (rule, body) in enumerate(zip(rules, bodies, strict=True)):
        session.add(
            RuleRow(
                subscriber_id=row.id,
                position=position,
                name=rule.display_name(),
                body=json.dumps(body),
            )
        )


def active_subscribers(engine: Engine, emails: Sequence[str] = ()) -> list[Subscriber]:
    """Active subscribers with their rules, optionally only those with the given addresses."""
    with Session(engine) as session:
        query = (
            select(SubscriberRow)
            .where(col(SubscriberRow.active))
            .order_by(col(SubscriberRow.email))
        )
        if emails:
            query = query.where(col(SubscriberRow.email).in_(emails))
        return [_to_subscriber(session, row) for row in session.exec(query)]


def _to_subscriber(session: Session, row: SubscriberRow) -> Subscriber:
    assert row.id is not None
    rules = tuple(
        Rule(name=b["name"], any=tuple(b["any"]), all=tuple(b["all"]), none=tuple(b["none"]))
        for b in _bodies(session, row)
    )
    return Subscriber(
        id=row.id, email=row.email, name=row.name, rules=rules, max_papers=row.max_papers
    )
