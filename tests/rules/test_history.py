"""Tests for what each subscriber already has: emails on their way and papers sent."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from helpers import queued, rows
from sqlalchemy import Engine, event

from digestbot.delivery import claims
from digestbot.rules import history
from digestbot.settings import Settings
from digestbot.store.engine import make_engine


def test_an_email_sent_while_the_history_is_read_still_counts_as_taken(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Another process sending a queued email between the history's reads cannot make its
    papers look free (they would go out twice)."""
    queued(engine, settings, clock, count=1)
    (row,) = rows(engine)
    other = make_engine(settings.database_url)
    fired: list[str] = []

    def send_it_meanwhile(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        reads_history = "FROM deliveries" in statement or "FROM sent_papers" in statement
        if not fired and statement.lstrip().startswith("SELECT") and reads_history:
            fired.append(statement)
            assert row.id is not None
            claims.claim(other, row.id, now=clock, by="other:1")
            claims.mark_sent(other, row.id, where="smtp://elsewhere", now=clock)

    event.listen(engine, "after_cursor_execute", send_it_meanwhile)
    try:
        taken = history.taken_since(engine, None)
    finally:
        event.remove(engine, "after_cursor_execute", send_it_meanwhile)
        other.dispose()
    assert fired, "the row was sent between the reads"
    assert rows(engine)[0].status == "sent"
    assert set(row.paper_ids) <= taken[row.subscriber_id]
