"""Ingest stage, enrich (store edge): which papers wait for an arXiv lookup, and what each
lookup found, written in one transaction."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine, func
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from digestbot.ingest.enrich import Choice, Sought, adoption
from digestbot.models import ListedPaper
from digestbot.store.engine import write_session
from digestbot.store.tables import EnrichmentRow, PaperRow

RUN_NAME = "arxiv-lookups"  # how enrichment runs are recorded beside the sources' runs


@dataclass(frozen=True)
class Recorded:
    """What a run's choices did: papers that took an arXiv record, papers whose record
    another stored paper already has, and papers arXiv had nothing for (yet)."""

    adopted: int = 0
    elsewhere: int = 0
    not_found: int = 0


def _waiting(now: datetime, retry_days: int) -> ColumnElement[bool]:
    """Title-only papers not looked up in vain within the last `retry_days` days."""
    recent = select(EnrichmentRow.paper_id).where(
        col(EnrichmentRow.tried_at) > now - timedelta(days=retry_days)
    )
    return col(PaperRow.arxiv_id).is_(None) & col(PaperRow.id).not_in(recent)


def waiting(
    engine: Engine, *, now: datetime, retry_days: int, limit: int | None = None
) -> list[Sought]:
    """The papers due for a lookup, newest first: those about to be sent matter most."""
    query = (
        select(PaperRow)
        .where(_waiting(now, retry_days))
        .order_by(col(PaperRow.first_seen).desc(), col(PaperRow.id))
        .limit(limit)
    )
    with Session(engine) as session:
        return [
            Sought(row.id, row.title, row.abstract, tuple(row.authors), row.published)
            for row in session.exec(query)
        ]


def waiting_count(engine: Engine, *, now: datetime, retry_days: int) -> int:
    """How many papers are due for a lookup."""
    with Session(engine) as session:
        query = select(func.count()).select_from(PaperRow).where(_waiting(now, retry_days))
        return session.exec(query).one()


def last_lookup(engine: Engine, paper_id: str) -> EnrichmentRow | None:
    """The last arXiv lookup of a paper, if it had one."""
    with Session(engine) as session:
        return session.get(EnrichmentRow, paper_id)


def record(engine: Engine, choices: Sequence[Choice], *, now: datetime) -> Recorded:
    """Adopt what was found and note every lookup, all in one transaction; a paper that
    gained an id meanwhile (another source listed it) is left as it is."""
    adopted = elsewhere = not_found = 0
    with write_session(engine) as session:
        for choice in choices:
            row = session.get(PaperRow, choice.paper_id)
            if row is None or row.arxiv_id:
                continue
            found = choice.adopted
            holder = _holder(session, found.arxiv_id) if found and found.arxiv_id else None
            if found is None:
                outcome, detail, not_found = "none", choice.reason, not_found + 1
            elif holder is not None:
                outcome, detail, elsewhere = "elsewhere", f"stored as {holder}", elsewhere + 1
            else:
                _adopt(row, adoption(found))
                outcome, detail, adopted = "adopted", "", adopted + 1
            session.merge(
                EnrichmentRow(
                    paper_id=row.id,
                    tried_at=now,
                    outcome=outcome,
                    arxiv_id=found.arxiv_id if found else None,
                    detail=detail,
                )
            )
            session.add(row)
    return Recorded(adopted, elsewhere, not_found)


def _holder(session: Session, arxiv_id: str) -> str | None:
    query = select(PaperRow.id).where(col(PaperRow.arxiv_id) == arxiv_id)
    return session.exec(query).first()


def _adopt(row: PaperRow, found: ListedPaper) -> None:
    """Take the arXiv record's id, authors, categories (primary first), links and date;
    keep the page's title, counts and first-seen time, and the longer abstract."""
    row.arxiv_id = found.arxiv_id
    if found.authors:
        row.authors = list(found.authors)
        row.author_count = len(found.authors)
    row.categories = list(dict.fromkeys([*found.categories, *row.categories]))
    # New values, never changed in place: a JSON column notices only assignments.
    row.links = {**row.links, **dict(found.links)}
    row.published = found.published or row.published
    if len(found.abstract) > len(row.abstract):
        row.abstract = found.abstract
