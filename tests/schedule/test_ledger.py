"""Tests for the daemon's records: the job list that `digestbot status` shows."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine

from digestbot.schedule import ledger
from digestbot.store.tables import JobRow

NOW = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)


def test_saving_the_job_list_keeps_each_jobs_last_run(engine: Engine) -> None:
    """A job's last run survives the next save of the list; a job no longer there is dropped."""
    ledger.save_jobs(
        engine, [JobRow(id="tick", description="tick"), JobRow(id="old", description="old")]
    )
    ledger.note_job_run(engine, "tick", now=NOW, result="ok")
    later = NOW + timedelta(seconds=30)
    ledger.save_jobs(engine, [JobRow(id="tick", description="tick", next_run_at=later)])
    (tick,) = ledger.jobs(engine)
    assert (tick.id, tick.last_run_at, tick.last_result, tick.next_run_at) == (
        "tick",
        NOW,
        "ok",
        later,
    )
