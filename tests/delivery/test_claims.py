"""Claiming and closing outbox rows on SQLite (test_postgres runs the PostgreSQL side)."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from datetime import datetime
from pathlib import Path

import pytest
from helpers import queued, race, rows
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, select

from digestbot.delivery import claims
from digestbot.settings import Settings
from digestbot.store.tables import SentPaperRow


def sent_papers(engine: Engine) -> list[SentPaperRow]:
    with Session(engine) as session:
        return list(session.exec(select(SentPaperRow)))


def test_a_row_is_claimed_once_and_never_after_it_is_sent(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """The conditional claim takes a pending row once; a claimed or sent row gives None."""
    (row_id,) = queued(engine, settings, clock, count=1)
    first = claims.claim(engine, row_id, now=clock, by="one")
    assert first is not None and first.attempts == 0
    assert claims.claim(engine, row_id, now=clock, by="two") is None
    claims.mark_sent(engine, row_id, where="smtp://test", now=clock)
    assert claims.claim(engine, row_id, now=clock, by="three") is None
    assert [(r.status, r.attempts, r.claimed_by) for r in rows(engine)] == [("sent", 1, "one")]


def test_two_claimers_racing_on_sqlite_take_each_row_once(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Two claimers with their own engines race over every row; each row goes to one."""
    ids = queued(engine, settings, clock, count=12)
    won = race(settings.database_url, ids, clock)
    assert sorted(won[0] + won[1]) == sorted(ids)
    assert {(r.status, r.attempts) for r in rows(engine)} == {("sending", 1)}


def test_a_row_is_marked_sent_only_together_with_its_papers(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """If recording the papers fails, the row is not marked sent either: one transaction."""
    (row_id,) = queued(engine, settings, clock, count=1)
    assert claims.claim(engine, row_id, now=clock, by="me") is not None
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    with closing(sqlite3.connect(database)) as conn:
        conn.execute(
            "CREATE TRIGGER refuse BEFORE INSERT ON sent_papers "
            "BEGIN SELECT RAISE(ABORT, 'sent_papers refused'); END"
        )
        conn.commit()
    with pytest.raises(IntegrityError, match="sent_papers refused"):
        claims.mark_sent(engine, row_id, where="smtp://test", now=clock)
    assert [(r.status, r.sent_at) for r in rows(engine)] == [("sending", None)]
    assert sent_papers(engine) == []


def test_closing_a_row_that_does_not_exist_raises_and_claims_nothing(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A close naming no row raises, and the claim settled with it is rolled back."""
    (row_id,) = queued(engine, settings, clock, count=1)
    missing = claims.Closing(row_id + 1000, "sent", "smtp://test")
    with engine.connect() as connection, pytest.raises(RuntimeError, match="no delivery row"):
        claims.settle(connection, missing, claim_id=row_id, now=clock, by="me")
    with pytest.raises(RuntimeError, match=f"no delivery row {row_id + 1000} to close as sent"):
        claims.mark_sent(engine, row_id + 1000, where="smtp://test", now=clock)
    assert [(r.status, r.attempts) for r in rows(engine)] == [("pending", 0)]


def test_an_attempt_cannot_end_in_a_state_that_is_not_an_ending() -> None:
    """Only sent, retry, failed and unknown close an attempt; pending or sending is refused."""
    for state in ("pending", "sending", "Sent"):
        with pytest.raises(ValueError, match="an attempt ends as one of"):
            claims.Closing(1, state, "")
