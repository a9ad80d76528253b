"""Rules stage, storage: what readers said through their links: the addresses that asked to
get nothing more (the suppression list) and their votes on papers."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy import Engine, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from digestbot.store.engine import write_session
from digestbot.store.tables import PaperRow, SubscriberRow, SuppressionRow, VoteRow

VOTES = ("up", "down")
VOTE_FIELDS = ("email", "paper_id", "title", "vote", "voted_at", "digest")


@dataclass(frozen=True)
class Reader:
    """A subscriber as a reader's page shows them."""

    id: int
    email: str
    active: bool
    suppressed_at: datetime | None


def reader(engine: Engine, subscriber_id: int) -> Reader | None:
    """The subscriber a link names, and whether their address is suppressed."""
    with Session(engine) as session:
        row = session.get(SubscriberRow, subscriber_id)
        if row is None or row.id is None:
            return None
        gone = session.get(SuppressionRow, row.email)
        return Reader(row.id, row.email, row.active, gone.created_at if gone else None)


def suppress(session: Session, email: str, *, now: datetime, via: str) -> bool:
    """Put `email` on the suppression list and deactivate its subscriber, in `session`'s
    transaction; False if it was there already (asking twice changes nothing)."""
    if session.get(SuppressionRow, email) is not None:
        return False
    session.add(SuppressionRow(email=email, created_at=now, via=via))
    row = session.exec(select(SubscriberRow).where(SubscriberRow.email == email)).first()
    if row is not None and row.active:
        row.active = False
        row.updated_at = now
        session.add(row)
    return True


def unsuppress(session: Session, email: str) -> bool:
    """Take `email` off the suppression list in `session`'s transaction; False if it was
    not on it."""
    row = session.get(SuppressionRow, email)
    if row is None:
        return False
    session.delete(row)
    return True


def suppressions(engine: Engine) -> dict[str, SuppressionRow]:
    """Every suppressed address, with when and how it left."""
    with Session(engine) as session:
        return {row.email: row for row in session.exec(select(SuppressionRow))}


def suppressed_count(engine: Engine) -> int:
    with Session(engine) as session:
        return int(session.exec(select(func.count()).select_from(SuppressionRow)).one())


def record_vote(
    engine: Engine, subscriber_id: int, paper_id: str, vote: str, *, digest: str, now: datetime
) -> bool:
    """Record the reader's vote on a paper, replacing an earlier one (the latest wins);
    False if the subscriber or the paper is unknown."""
    with write_session(engine) as session:
        if session.get(SubscriberRow, subscriber_id) is None:
            return False
        if session.get(PaperRow, paper_id) is None:
            return False
        found = session.exec(
            select(VoteRow).where(
                VoteRow.subscriber_id == subscriber_id, VoteRow.paper_id == paper_id
            )
        ).first()
        row = found or VoteRow(
            subscriber_id=subscriber_id, paper_id=paper_id, vote=vote, voted_at=now, digest=digest
        )
        row.vote, row.voted_at, row.digest = vote, now, digest
        session.add(row)
        return True


def put_vote(
    session: Session, subscriber_id: int, paper_id: str, vote: str, *, digest: str, at: datetime
) -> Literal["new", "replaced", "older", "same"]:
    """Store a vote cast at `at` in `session`'s transaction unless the stored vote on that
    paper is as recent or more (the latest wins); say which it was."""
    found = session.exec(
        select(VoteRow).where(VoteRow.subscriber_id == subscriber_id, VoteRow.paper_id == paper_id)
    ).first()
    if found is not None and found.voted_at >= at:
        same = (found.voted_at, found.vote, found.digest) == (at, vote, digest)
        return "same" if same else "older"
    row = found or VoteRow(
        subscriber_id=subscriber_id, paper_id=paper_id, vote=vote, voted_at=at, digest=digest
    )
    row.vote, row.voted_at, row.digest = vote, at, digest
    session.add(row)
    return "new" if found is None else "replaced"


@dataclass(frozen=True)
class CastVote:
    """One vote as `feedback export` writes it."""

    email: str
    paper_id: str
    title: str
    vote: str
    voted_at: datetime
    digest: str


def votes(engine: Engine) -> list[CastVote]:
    """Every vote, oldest first, with the reader's address and the paper's title."""
    query = (
        select_columns(
            col(SubscriberRow.email),
            col(VoteRow.paper_id),
            col(PaperRow.title),
            col(VoteRow.vote),
            col(VoteRow.voted_at),
            col(VoteRow.digest),
        )
        .join(SubscriberRow, col(SubscriberRow.id) == VoteRow.subscriber_id)
        .join(PaperRow, col(PaperRow.id) == VoteRow.paper_id)
        .order_by(col(VoteRow.voted_at), col(VoteRow.id))
    )
    with Session(engine) as session:
        return [CastVote(*row) for row in session.execute(query)]


def votes_by_subscriber(
    engine: Engine, span: tuple[int, int] | None = None
) -> dict[int, dict[str, str]]:
    """Each subscriber's standing votes (of those with ids in `span`, when given):
    subscriber id → paper id → "up" or "down"."""
    query = select_columns(col(VoteRow.subscriber_id), col(VoteRow.paper_id), col(VoteRow.vote))
    if span is not None:
        query = query.where(col(VoteRow.subscriber_id).between(*span))
    found: dict[int, dict[str, str]] = {}
    with Session(engine) as session:
        for subscriber, paper, vote in session.execute(query.order_by(col(VoteRow.id))):
            found.setdefault(subscriber, {})[paper] = vote
    return found
