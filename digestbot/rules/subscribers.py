"""Rules stage, storage: sync the validated subscriptions into SQLite and read them back."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import Engine, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, delete, select

from digestbot.models import Rule, Seed, Subscriber
from digestbot.rules.likeindex import like_scopes
from digestbot.rules.likestore import SeedBook
from digestbot.rules.subscriptions import SubscriberSpec, SubscriptionsFile
from digestbot.store.tables import RuleRow, SubscriberRow, SuppressionRow


@dataclass
class SyncResult:
    """Which addresses a sync added, changed, deactivated, reactivated or left alone."""

    added: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    deactivated: list[str] = field(default_factory=list)
    reactivated: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    # Listed in the file but on the suppression list: kept inactive, never reactivated.
    suppressed: list[Suppressed] = field(default_factory=list)


@dataclass(frozen=True)
class Suppressed:
    """An address the subscriptions file lists although it asked to get nothing more."""

    email: str
    since: datetime
    via: str  # "link" or "operator"

    def warning(self) -> str:
        """What the operator is told, by `subscriptions validate`/`sync` and the daemon."""
        how = "by the operator" if self.via == "operator" else "via the link"
        return (
            f"{self.email} unsubscribed on {self.since:%Y-%m-%d} {how}; remove them from the "
            f"file or run digestbot resubscribe {self.email}"
        )


def listed_but_suppressed(engine: Engine, spec: SubscriptionsFile) -> list[Suppressed]:
    """The addresses of `spec` that are on the suppression list, in file order."""
    with Session(engine) as session:
        return _suppressed_of(session, spec)


def _suppressed_of(session: Session, spec: SubscriptionsFile) -> list[Suppressed]:
    gone = {row.email: row for row in session.exec(select(SuppressionRow))}
    return [
        Suppressed(s.email, gone[s.email].created_at, gone[s.email].via)
        for s in spec.subscribers
        if s.email in gone
    ]


def rule_to_json(rule: Rule) -> dict[str, Any]:
    """A rule (with its resolved topics) as the JSON object stored for it."""
    body: dict[str, Any] = json.loads(json.dumps(asdict(rule)))
    _drop_empty_categories(body)
    return body


def _drop_empty_categories(body: dict[str, Any]) -> None:
    """Leave out an empty `categories` (and the `like` fields of a rule without seeds), so a
    rule without them is stored as it always was and a sync does not see every stored rule
    as changed."""
    if not body.get("categories"):
        body.pop("categories", None)
    if not body.get("like"):
        for key in ("like", "min_similarity", "top"):
            body.pop(key, None)
    for topic in body["topics"]:
        _drop_empty_categories(topic)


def rule_from_json(data: dict[str, Any]) -> Rule:
    """The inverse of rule_to_json."""
    return Rule(
        name=data["name"],
        any=tuple(data["any"]),
        all=tuple(data["all"]),
        none=tuple(data["none"]),
        authors=tuple(data["authors"]),
        topics=tuple(rule_from_json(t) for t in data["topics"]),
        fields=tuple(data["fields"]),
        min_upvotes=data["min_upvotes"],
        fuzzy=data["fuzzy"],
        mode=data["mode"],
        categories=tuple(data.get("categories", ())),
        like=tuple(
            Seed(seed["label"], seed["text"], seed.get("paper_id")) for seed in data.get("like", ())
        ),
        min_similarity=data.get("min_similarity"),
        top=data.get("top"),
    )


def sync_subscriptions(engine: Engine, spec: SubscriptionsFile, *, now: datetime) -> SyncResult:
    """Make the database match `spec` in one transaction; removed subscribers are deactivated.

    Rules are replaced, never merged; papers already sent stay recorded, so a rule change
    never sends a paper twice. A suppressed address keeps its settings and rules up to date
    but stays inactive, whatever the file says, until the operator resubscribes it.
    """
    result = SyncResult()
    # `like:` seeds naming stored papers are stored with those papers' text.
    rules = {sub.email: spec.rules_of(sub) for sub in spec.subscribers}
    if any(like_scopes(r) for rs in rules.values() for r in rs):
        book = SeedBook(engine)
        rules = {email: tuple(book.resolve(r) for r in rs) for email, rs in rules.items()}
    with Session(engine) as session, session.begin():
        rows = {row.email: row for row in session.exec(select(SubscriberRow))}
        result.suppressed = _suppressed_of(session, spec)
        held = {s.email for s in result.suppressed}
        for sub in spec.subscribers:
            wanted, bodies = _wanted(spec, sub), [rule_to_json(r) for r in rules[sub.email]]
            row, active = rows.get(sub.email), sub.email not in held
            if row is not None and row.active == active and _same(session, row, wanted, bodies):
                if active:
                    result.unchanged.append(sub.email)
                continue
            if active:
                _tally(result, sub.email, row)
            row = row or SubscriberRow(email=sub.email, created_at=now, updated_at=now)
            for key, value in wanted.items():
                setattr(row, key, value)
            row.active, row.updated_at = active, now
            session.add(row)
            session.flush()
            _replace_rules(session, row, bodies)
        listed = {s.email for s in spec.subscribers}
        for email, row in rows.items():
            if email not in listed and row.active:
                row.active, row.updated_at = False, now
                session.add(row)
                result.deactivated.append(email)
    return result


def _wanted(spec: SubscriptionsFile, sub: SubscriberSpec) -> dict[str, Any]:
    """The subscriber's settings as the file gives them, its defaults filled in."""
    timezone, send_at, frequency = spec.schedule_of(sub)
    defaults = spec.defaults
    return {
        "name": sub.name,
        "timezone": timezone,
        "send_at": send_at,
        "frequency": frequency,
        "max_papers": sub.max_papers or defaults.max_papers,
        "send_empty": defaults.send_empty if sub.send_empty is None else sub.send_empty,
        "recommend": defaults.recommend if sub.recommend is None else sub.recommend,
    }


def _same(
    session: Session, row: SubscriberRow, wanted: dict[str, Any], bodies: list[dict[str, Any]]
) -> bool:
    return _settings_of(row) == wanted and _bodies(session, row) == bodies


def _tally(result: SyncResult, email: str, row: SubscriberRow | None) -> None:
    """Count a listed, unsuppressed address that the sync changes."""
    if row is None:
        result.added.append(email)
    elif not row.active:
        result.reactivated.append(email)
    else:
        result.changed.append(email)


def _settings_of(row: SubscriberRow) -> dict[str, Any]:
    keys = ("name", "timezone", "send_at", "frequency", "max_papers", "send_empty", "recommend")
    return {key: getattr(row, key) for key in keys}


def _bodies(session: Session, row: SubscriberRow) -> list[dict[str, Any]]:
    query = select(RuleRow).where(RuleRow.subscriber_id == row.id).order_by(col(RuleRow.position))
    return [rule.body for rule in session.exec(query)]


def _replace_rules(session: Session, row: SubscriberRow, bodies: list[dict[str, Any]]) -> None:
    if row.id is None:
        raise RuntimeError(f"subscriber {row.email} has no id yet: flush it before its rules")
    session.exec(delete(RuleRow).where(col(RuleRow.subscriber_id) == row.id))
    for position, body in enumerate(bodies):
        session.add(RuleRow(subscriber_id=row.id, position=position, name=body["name"], body=body))


_SUBSCRIBER_COLUMNS = (
    col(SubscriberRow.id),
    col(SubscriberRow.email),
    col(SubscriberRow.name),
    col(SubscriberRow.max_papers),
    col(SubscriberRow.timezone),
    col(SubscriberRow.send_at),
    col(SubscriberRow.frequency),
    col(SubscriberRow.send_empty),
    col(SubscriberRow.created_at),
    col(SubscriberRow.recommend),
)


def subscriber_known(engine: Engine, email: str) -> bool:
    """Whether a subscriptions file ever listed `email` (active or not)."""
    with Session(engine) as session:
        query = select(SubscriberRow.id).where(SubscriberRow.email == email)
        return session.exec(query).first() is not None


def active_count(engine: Engine) -> int:
    """How many subscribers are active: a glance, before reading them all."""
    with Session(engine) as session:
        query = select(func.count()).select_from(SubscriberRow).where(col(SubscriberRow.active))
        return int(session.exec(query).one())


def active_subscribers(
    engine: Engine, emails: Sequence[str] = (), *, span: tuple[int, int] | None = None
) -> list[Subscriber]:
    """Active subscribers with their rules, optionally only those with the given addresses
    or ids in the inclusive range `span` (a worker's slice).

    Read as plain rows, not ORM objects: every run reads all of them before the first email
    goes out (10,000 subscribers with 20,000 rules: ~0.65 s as ORM objects, ~0.3 s as rows).
    """
    with Session(engine) as session:
        query = select_columns(*_SUBSCRIBER_COLUMNS).where(col(SubscriberRow.active))
        if emails:
            query = query.where(col(SubscriberRow.email).in_(emails))
        by_position = select(RuleRow.subscriber_id, RuleRow.body).order_by(col(RuleRow.position))
        if span is not None:
            query = query.where(col(SubscriberRow.id).between(*span))
            by_position = by_position.where(col(RuleRow.subscriber_id).between(*span))
        rows = session.execute(query.order_by(col(SubscriberRow.email))).all()
        rules: dict[int, list[Rule]] = {}
        for subscriber_id, body in session.execute(by_position):
            rules.setdefault(subscriber_id, []).append(rule_from_json(body))
    return [
        Subscriber(
            id=row.id,
            email=row.email,
            name=row.name,
            rules=tuple(rules.get(row.id, [])),
            max_papers=row.max_papers,
            timezone=row.timezone,
            send_at=row.send_at,
            frequency=row.frequency,
            send_empty=row.send_empty,
            created_at=row.created_at,
            recommend=row.recommend,
        )
        for row in rows
    ]
