"""Rules stage, storage: votes read back from a `feedback export` file, checked row by row
and stored in one transaction, where the latest vote on a paper wins."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot.addresses import normalise_address
from digestbot.errors import FeedbackFileError
from digestbot.rules.readers import VOTE_FIELDS, VOTES, put_vote
from digestbot.store.engine import write_session
from digestbot.store.tables import PaperRow, SubscriberRow

SHOWN_PROBLEMS = 20


@dataclass(frozen=True)
class ImportedVote:
    """One checked row: whose vote, on which stored paper, when and from which digest."""

    subscriber_id: int
    paper_id: str
    vote: str
    voted_at: datetime
    digest: str


@dataclass
class ImportCounts:
    """What an import did with its rows."""

    new: int = 0
    replaced: int = 0
    older: int = 0
    same: int = 0

    @property
    def total(self) -> int:
        return self.new + self.replaced + self.older + self.same


def import_votes(engine: Engine, text: str, source: str) -> ImportCounts:
    """Store every vote of `text` (CSV or JSON as `feedback export` writes it) or none: any
    bad row raises FeedbackFileError naming each one, and the database stays as it was."""
    records = list(_records(text, source))
    with write_session(engine) as session:
        checked, problems = _check(session, records, source)
        if problems:
            raise _refusal(problems)
        counts = ImportCounts()
        # In time order, so that of two rows on one paper the later one stays.
        for vote in sorted(checked, key=lambda v: v.voted_at):
            outcome = put_vote(
                session,
                vote.subscriber_id,
                vote.paper_id,
                vote.vote,
                digest=vote.digest,
                at=vote.voted_at,
            )
            setattr(counts, outcome, getattr(counts, outcome) + 1)
        return counts


def _refusal(problems: list[str]) -> FeedbackFileError:
    shown = problems[:SHOWN_PROBLEMS]
    if len(problems) > SHOWN_PROBLEMS:
        shown.append(f"… {len(problems) - SHOWN_PROBLEMS} more")
    return FeedbackFileError(shown, "nothing was imported; fix these rows and run it again")


def _records(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    """(row number, fields) for each vote: a JSON list when the text starts with `[`, else
    CSV with a header line (rows numbered by the line they start on)."""
    if text.lstrip().startswith("["):
        yield from _json_records(text, source)
        return
    reader = csv.DictReader(io.StringIO(text))
    missing = [f for f in VOTE_FIELDS if f not in (reader.fieldnames or [])]
    if missing:
        raise FeedbackFileError(
            [f"{source}:1: the header lacks {', '.join(missing)}"],
            "give a file `digestbot feedback export` wrote: CSV with the header "
            + ",".join(VOTE_FIELDS)
            + ", or a JSON list",
        )
    start = reader.line_num + 1
    for row in reader:
        yield start, row
        start = reader.line_num + 1


def _json_records(text: str, source: str) -> Iterator[tuple[int, dict[str, Any]]]:
    hint = "give the JSON list `digestbot feedback export --json` wrote"
    try:
        listed = json.loads(text)
    except json.JSONDecodeError as exc:
        raise FeedbackFileError([f"{source}: not valid JSON: {exc}"], hint) from None
    if not isinstance(listed, list):
        raise FeedbackFileError([f"{source}: not a JSON list"], hint)
    for number, item in enumerate(listed, start=1):
        yield number, item if isinstance(item, dict) else {"": item}


def _check(
    session: Session, records: list[tuple[int, dict[str, Any]]], source: str
) -> tuple[list[ImportedVote], list[str]]:
    """The rows as votes, and a `FILE:ROW: …` line for each row that is wrong."""
    subscribers = {row.email: row.id for row in session.exec(select(SubscriberRow))}
    checked: list[ImportedVote] = []
    problems: list[str] = []
    for number, fields in records:
        wrong: list[str] = []
        subscriber = _subscriber(subscribers, fields.get("email"), wrong)
        paper = _paper(session, fields.get("paper_id"), wrong)
        vote = fields.get("vote")
        if vote not in VOTES:
            wrong.append(f"vote is {_shown(vote)}, not up or down")
        voted_at = _time(fields.get("voted_at"), wrong)
        digest = fields.get("digest")
        if not isinstance(digest, str):
            wrong.append("digest is missing")
        problems += [f"{source}:{number}: {what}" for what in wrong]
        if not wrong:
            assert subscriber is not None and paper and voted_at and isinstance(digest, str)
            checked.append(ImportedVote(subscriber, paper, str(vote), voted_at, digest))
    return checked, problems


def _shown(value: object) -> str:
    return "missing" if value is None else repr(value)


def _subscriber(known: dict[str, int | None], email: object, wrong: list[str]) -> int | None:
    try:
        address = normalise_address(email) if isinstance(email, str) else None
    except ValueError:
        address = None
    found = known.get(address) if address else None
    if found is None:
        wrong.append(f"no subscriber has the address {_shown(email)}")
    return found


def _paper(session: Session, paper_id: object, wrong: list[str]) -> str | None:
    """The stored paper's id: the row's id, or a stored paper with that arXiv id."""
    if isinstance(paper_id, str) and paper_id:
        if session.get(PaperRow, paper_id) is not None:
            return paper_id
        same = session.exec(select(PaperRow).where(PaperRow.arxiv_id == paper_id)).first()
        if same is not None:
            return same.id
    wrong.append(f"no stored paper has the id {_shown(paper_id)}")
    return None


def _time(value: object, wrong: list[str]) -> datetime | None:
    try:
        when = datetime.fromisoformat(value) if isinstance(value, str) else None
    except ValueError:
        when = None
    if when is None:
        wrong.append(f"voted_at is {_shown(value)}, not an ISO 8601 time")
    elif when.tzinfo is None:
        wrong.append(f"voted_at {value!r} has no timezone (add +00:00 or Z)")
        return None
    return when.astimezone(UTC) if when else None
