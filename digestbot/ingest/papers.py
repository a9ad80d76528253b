"""Ingest stage: give listed papers stable ids and upsert them, one transaction per document.

The same paper is one row across sources and days: matched by arXiv id, or, when either side
has no id, by normalised titles at rapidfuzz ratio >= TITLE_MATCH whose authors, year and
abstract agree wherever both sightings know them (see `sameness`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime

from rapidfuzz import fuzz, process
from sqlalchemy import Engine, func
from sqlmodel import Session, col, select

from digestbot.ingest.bounds import bounded
from digestbot.ingest.http import Validators
from digestbot.ingest.sameness import same_paper
from digestbot.ingest.textnorm import normalise_title
from digestbot.models import ListedPaper, Listing, Paper
from digestbot.store.engine import write_session
from digestbot.store.tables import FeedStateRow, FolderFileRow, PaperRow, SentPaperRow

TITLE_MATCH = 95.0
_CANDIDATES = 5  # alike titles checked for agreement, most alike first


@dataclass(frozen=True)
class IngestResult:
    """How one document's papers fared: new, already known, or skipped."""

    source: str
    new: int
    known: int
    skipped: tuple[str, ...]
    not_modified: bool = False
    trimmed: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()


def paper_id(paper: ListedPaper) -> str:
    """The stable id: the arXiv id when known, otherwise a hash of the normalised title."""
    if paper.arxiv_id:
        return paper.arxiv_id
    digest = hashlib.sha256(normalise_title(paper.title).encode("utf-8")).hexdigest()
    return f"t-{digest[:16]}"


class _Index:
    """The stored papers' ids and titles, to find the row a listed paper already has."""

    def __init__(self, session: Session) -> None:
        self.session = session
        rows = session.exec(select(PaperRow.id, PaperRow.arxiv_id, PaperRow.norm_title)).all()
        self.by_arxiv = {arxiv: pid for pid, arxiv, _ in rows if arxiv}
        self.all = {pid: title for pid, _, title in rows}
        self.idless = {pid: title for pid, arxiv, title in rows if not arxiv}

    def find(self, listed: ListedPaper) -> PaperRow | None:
        """The stored row of the same paper: by arXiv id, else a like title that the rest of
        what both know agrees with."""
        if listed.arxiv_id and listed.arxiv_id in self.by_arxiv:
            return self.session.get(PaperRow, self.by_arxiv[listed.arxiv_id])
        # Two different arXiv ids are two papers, however alike their titles.
        pool = self.idless if listed.arxiv_id else self.all
        title = normalise_title(listed.title)
        alike = process.extract(
            title,
            pool,
            scorer=fuzz.ratio,
            score_cutoff=TITLE_MATCH,
            limit=_CANDIDATES,
        )
        sighting = (listed.authors, listed.published, listed.abstract)
        for stored_title, _, pid in alike:
            row = self.session.get(PaperRow, pid)
            known = (tuple(row.authors), row.published, row.abstract) if row else None
            if known and same_paper(known, sighting, same_title=stored_title == title):
                return row
        return None

    def free_id(self, listed: ListedPaper) -> str:
        """`paper_id`, numbered on when another paper with the same title already has it."""
        base = candidate = paper_id(listed)
        number = 1
        while candidate in self.all:
            number += 1
            candidate = f"{base}-{number}"
        return candidate

    def record(self, row: PaperRow) -> None:
        self.all[row.id] = row.norm_title
        if row.arxiv_id:
            self.by_arxiv[row.arxiv_id] = row.id
            self.idless.pop(row.id, None)
        else:
            self.idless[row.id] = row.norm_title


def ingest(
    engine: Engine,
    listing: Listing,
    *,
    now: datetime,
    validators: tuple[str, Validators] | None = None,
    done: FolderFileRow | None = None,
) -> IngestResult:
    """Store the listing's papers, cleaned and bounded, in one transaction; known papers keep
    their first-seen time.

    `validators` (url, what its server said identifies this answer) and `done` (the file a
    folder source read) are stored in the same transaction, so a document that failed to
    store is fetched, or read, in full next time.
    """
    listing = bounded(listing)
    new = known = 0
    # The write lock from the start: a second ingest at the same moment waits, then reads
    # the papers this one stored, instead of inserting the same new paper twice.
    with write_session(engine) as session:
        index = _Index(session)
        mark = session.exec(select(func.max(SentPaperRow.id))).one() or 0
        for listed in listing.papers:
            stored = index.find(listed)
            if stored is None:
                stored = _new_row(listed, index.free_id(listed), listing.source, now, mark)
                session.add(stored)
                new += 1
            else:
                _merge(stored, listed, listing.source)
                known += 1
            index.record(stored)
        if validators is not None:
            url, found = validators
            session.merge(
                FeedStateRow(
                    url=url, etag=found.etag, last_modified=found.last_modified, fetched_at=now
                )
            )
        if done is not None:
            session.merge(done)
    return IngestResult(
        listing.source, new, known, listing.skipped, trimmed=listing.trimmed, notes=listing.notes
    )


def _new_row(listed: ListedPaper, pid: str, source: str, now: datetime, sent_mark: int) -> PaperRow:
    return PaperRow(
        id=pid,
        title=listed.title,
        norm_title=normalise_title(listed.title),
        abstract=listed.abstract,
        arxiv_id=listed.arxiv_id,
        authors=list(listed.authors),
        author_count=listed.author_count or (len(listed.authors) or None),
        organisation=listed.organisation,
        published=listed.published,
        upvotes=listed.upvotes,
        comments=listed.comments,
        categories=list(listed.categories),
        links=dict(listed.links),
        keywords=list(listed.keywords),
        sources=[source],
        first_seen=now,
        sent_mark=sent_mark,
    )


def _merge(row: PaperRow, listed: ListedPaper, source: str) -> None:
    """Fill gaps from another sighting; counts only grow; first-seen and id never change."""
    row.arxiv_id = row.arxiv_id or listed.arxiv_id
    for name in ("upvotes", "comments"):
        value = getattr(listed, name)
        if value is not None:
            setattr(row, name, max(getattr(row, name) or 0, value))
    row.published = row.published or listed.published
    row.organisation = row.organisation or listed.organisation
    if listed.authors and not row.authors:
        row.authors = list(listed.authors)
    row.author_count = row.author_count or listed.author_count or (len(listed.authors) or None)
    if len(listed.abstract) > len(row.abstract):
        row.abstract = listed.abstract
    row.categories = _union(row.categories, listed.categories)
    row.keywords = _union(row.keywords, listed.keywords)
    row.sources = _union(row.sources, [source])
    # New values, never changed in place: a JSON column notices only assignments.
    row.links = {**dict(listed.links), **row.links}


def _union(stored: Sequence[str], more: Sequence[str]) -> list[str]:
    return list(dict.fromkeys([*stored, *more]))


def stored_validators(engine: Engine, url: str) -> Validators | None:
    """The validators stored for `url`, if it was fetched before."""
    with Session(engine) as session:
        row = session.get(FeedStateRow, url)
        return None if row is None else Validators(row.etag, row.last_modified)


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
        authors=tuple(row.authors),
        sources=tuple(row.sources),
        arxiv_id=row.arxiv_id,
        categories=tuple(row.categories),
        links=tuple(row.links.items()),
        comments=row.comments,
    )


def papers_seen_since(engine: Engine, since: datetime | None) -> list[Paper]:
    """Papers first seen after `since` (all papers when None), newest first."""
    with Session(engine) as session:
        query = select(PaperRow).order_by(col(PaperRow.first_seen).desc(), col(PaperRow.id))
        if since is not None:
            query = query.where(PaperRow.first_seen > since)
        return [to_paper(row) for row in session.exec(query)]


def papers_by_id(engine: Engine, ids: Collection[str]) -> list[Paper]:
    """The stored papers of `ids` (those that exist), newest first."""
    if not ids:
        return []
    with Session(engine) as session:
        query = select(PaperRow).where(col(PaperRow.id).in_(list(ids)))
        found = [to_paper(row) for row in session.exec(query)]
    return sorted(found, key=lambda p: (-p.first_seen.timestamp(), p.id))


def papers_named(engine: Engine, key: str) -> list[Paper]:
    """The papers `key` names: the one whose id or arXiv id it is, else every paper whose
    id starts with it (the short ids `papers list` prints); by id."""
    with Session(engine) as session:
        exact = select(PaperRow).where((col(PaperRow.id) == key) | (col(PaperRow.arxiv_id) == key))
        rows = list(session.exec(exact.order_by(col(PaperRow.id))))
        if not rows and key:
            prefix = select(PaperRow).where(col(PaperRow.id).startswith(key, autoescape=True))
            rows = list(session.exec(prefix.order_by(col(PaperRow.id))))
        return [to_paper(row) for row in rows]
