"""Papers stage: give listed papers stable ids and upsert them, one transaction per document."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session, col, select

from digestbot.db import PaperRow
from digestbot.models import ListedPaper, Listing, Paper
from digestbot.textnorm import normalise_title


@dataclass(frozen=True)
class IngestResult:
    """How one document's papers fared: new, already known, or skipped."""

    source: str
    new: int
    known: int
    skipped: tuple[str, ...]


def paper_id(paper: ListedPaper) -> str:
    """The stable id: the arXiv id when known, otherwise a hash of the normalised title."""
    if paper.arxiv_id:
        return paper.arxiv_id
    digest = hashlib.sha256(normalise_title(paper.title).encode("utf-8")).hexdigest()
    return f"t-{digest[:16]}"


def ingest(engine: Engine, listing: Listing, *, now: datetime) -> IngestResult:
    """Store the listing's papers; a paper seen before keeps its id and first-seen time."""
    new = known = 0
    with Session(engine) as session, session.begin():
        seen: set[str] = set()
        for listed in listing.papers:
            pid = paper_id(listed)
            if pid in seen:
                known += 1
                continue
            seen.add(pid)
            row = session.get(PaperRow, pid)
            if row is None:
                session.add(_new_row(pid, listed, listing.source, now))
                new += 1
            else:
                _merge(row, listed)
                known += 1
    return IngestResult(listing.source, new, known, listing.skipped)


def _new_row(pid: str, listed: ListedPaper, source: str, now: datetime) -> PaperRow:
    return PaperRow(
        id=pid,
        title=listed.title,
        norm_title=normalise_title(listed.title),
        abstract=listed.abstract,
        authors=json.dumps(list(listed.authors)),
        author_count=listed.author_count,
        organisation=listed.organisation,
        published=listed.published,
        upvotes=listed.upvotes,
        source=source,
        first_seen=now,
    )


def _merge(row: PaperRow, listed: ListedPaper) -> None:
    """Fill gaps from a later sighting; upvotes only grow. First-seen never changes."""
    if listed.upvotes is not None:
        row.upvotes = max(row.upvotes or 0, listed.upvotes)
    if row.published is None:
        row.published = listed.published
    if row.author_count is None:
        row.author_count = listed.author_count
    if row.organisation is None:
        row.organisation = listed.organisation
    if not json.loads(row.authors) and listed.authors:
        row.authors = json.dumps(list(listed.authors))
    if len(listed.abstract) > len(row.abstract):
        row.abstract = listed.abstract


def to_paper(row: PaperRow) -> Paper:
    """The pure value of a stored paper."""
    return Paper(
        id=row.id,
        title=row.title,
        abstract=row.abstract,
        first_seen=row.first_seen,
        published=row.published,
        upvotes=row.upvotes,
        author_count=row.author_count,
        organisation=row.organisation,
        authors=tuple(json.loads(row.authors)),
        source=row.source,
    )


def papers_seen_since(engine: Engine, since: datetime | None) -> list[Paper]:
    """Papers first seen after `since` (all papers when None), newest first."""
    with Session(engine) as session:
        query = select(PaperRow).order_by(col(PaperRow.first_seen).desc(), col(PaperRow.id))
        if since is not None:
            query = query.where(PaperRow.first_seen > since)
        return [to_paper(row) for row in session.exec(query)]
