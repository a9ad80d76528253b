"""CLI: the status view, what `digestbot status` shows (daemon, jobs, sources, outbox)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from datetime import datetime

from rich.table import Table
from sqlalchemy import Engine

from digestbot.delivery import outbox
from digestbot.schedule import ledger
from digestbot.store.lock import daemon_running
from digestbot.store.tables import STATES, DeliveryRow, SourceRunRow


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def tables(engine: Engine) -> Iterator[Table | str]:
    """The status report, piece by piece, for the CLI to print."""
    yield from _scheduler(engine)
    if runs := ledger.source_runs(engine):
        yield _sources(runs)
    counts = outbox.counts_by_status(engine)
    table = Table("state", "emails", title="Outbox")
    for state in STATES:
        table.add_row(state, str(counts.get(state, 0)))
    yield table
    if rows := outbox.problem_rows(engine):
        yield _problems(rows)


def _scheduler(engine: Engine) -> Iterator[Table | str]:
    """Whether the daemon runs, and its jobs when it does."""
    holder = ledger.lease(engine)
    if holder is None:
        yield "Scheduler: not running (start it with `digestbot run`)."
        return
    # The lease row outlives a daemon killed with SIGKILL; the lock does not.
    if daemon_running(engine) is False:
        yield (
            f"Scheduler: not running; last seen as {holder.owner} at "
            f"{_when(holder.heartbeat_at)} (it stopped without releasing its lease; "
            "start it with `digestbot run`)."
        )
        return
    yield (
        f"Scheduler: running as {holder.owner} since {_when(holder.acquired_at)}, "
        f"last heartbeat {_when(holder.heartbeat_at)}."
    )
    jobs = Table("job", "next run", "last run", "last result", title="Jobs")
    for job in ledger.jobs(engine):
        jobs.add_row(
            job.description, _when(job.next_run_at), _when(job.last_run_at), job.last_result or ""
        )
    yield jobs


def _sources(runs: Mapping[str, SourceRunRow]) -> Table:
    """Each source's last ingest and, while it keeps failing, why."""
    sources = Table("source", "last ingest", "new papers", "last success", "error", title="Sources")
    for name, run in sorted(runs.items()):
        failed = f"{run.error} ({run.failures} in a row)" if run.error else ""
        sources.add_row(
            name, _when(run.last_run_at), str(run.new_papers), _when(run.last_success_at), failed
        )
    return sources


def _problems(rows: Iterable[DeliveryRow]) -> Table:
    """The emails that need someone's attention or wait to retry: unknown, failed, retry."""
    detail = Table(
        "id",
        "state",
        "attempts",
        "next attempt",
        "Message-ID",
        "last error",
        title="Needs attention",
    )
    for row in rows:
        detail.add_row(
            str(row.id),
            row.status,
            str(row.attempts),
            row.next_attempt_at.strftime("%Y-%m-%d %H:%M") if row.next_attempt_at else "",
            row.message_id,
            row.last_error or "",
        )
    return detail
