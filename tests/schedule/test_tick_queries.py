"""Tests that the scheduler's tick reads the ever-growing tables only through indexes, so a
year of history costs it no more than a day."""

from __future__ import annotations

import asyncio
import re
import sqlite3
from contextlib import closing
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from conftest import LISTINGS
from helpers import prepare
from sqlalchemy import Engine, event

from digestbot.ingest.load import ingest_path
from digestbot.schedule import ledger, runs
from digestbot.settings import Settings

# Every digest adds rows to these for good; delivery_messages is bounded by
# DIGESTBOT_KEEP_MESSAGES_DAYS and subscribers by the subscriptions file.
GROWING = ("deliveries", "sent_papers", "digest_periods", "papers", "source_runs")
FULL_SCAN = re.compile(rf"\bSCAN ({'|'.join(GROWING)})\b")
DAY = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def plans(path: Path, statements: list[tuple[str, Any]]) -> dict[str, list[str]]:
    """EXPLAIN QUERY PLAN of each statement, as SQLite would run it on `path`."""
    found = {}
    with closing(sqlite3.connect(path)) as conn:
        for statement, params in statements:
            if not statement.lstrip().upper().startswith(("SELECT", "UPDATE", "DELETE", "INSERT")):
                continue
            one = params[0] if isinstance(params, list) else params
            rows = conn.execute(f"EXPLAIN QUERY PLAN {statement}", one or ()).fetchall()
            found[statement] = [row[-1] for row in rows]
    return found


def test_no_query_of_a_tick_scans_a_table_that_grows_with_history(
    engine: Engine, settings: Settings
) -> None:
    """A tick that decides and sends digests, and an idle one, search every growing table
    through an index; none reads one whole."""
    prepare(engine, DAY - timedelta(days=1, hours=2))
    asyncio.run(runs.send_due(engine, settings, now=DAY - timedelta(days=1)))  # history
    ingest_path(engine, LISTINGS / "001_da432fa98501e883.txt", now=DAY - timedelta(hours=2))
    ledger.take_lease(engine, now=DAY)
    statements: list[tuple[str, Any]] = []

    def note(conn: Any, cursor: Any, statement: str, params: Any, *rest: Any) -> None:
        statements.append((statement, params))

    event.listen(engine, "before_cursor_execute", note)
    for now in (DAY, DAY + timedelta(seconds=30)):  # deciding, then idle
        ledger.renew_lease(engine, now=now)
        decision, report = asyncio.run(runs.send_due(engine, settings, now=now))
        if now == DAY:
            assert decision.emails and report.count("sent") == decision.emails
    event.remove(engine, "before_cursor_execute", note)
    database = Path(settings.database_url.removeprefix("sqlite:///"))
    scans = {s: p for s, p in plans(database, statements).items() if FULL_SCAN.search(" ".join(p))}
    assert scans == {}
