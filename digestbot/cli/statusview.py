"""CLI: the status view: daemon, jobs, workers, sources, arXiv lookups, outbox and opt-outs."""

from __future__ import annotations

import shutil
import textwrap
from collections.abc import Iterator, Mapping, Sequence
from datetime import datetime

from rich.table import Table
from sqlalchemy import Engine

from digestbot.compose.words import plural
from digestbot.delivery import outbox
from digestbot.ingest.enrichstore import RUN_NAME, waiting_count
from digestbot.ingest.textnorm import safe_text
from digestbot.rules import readers
from digestbot.schedule import ledger, tasks
from digestbot.schedule.worker import LIVE
from digestbot.store.lock import daemon_running
from digestbot.store.tables import STATES, TASK_STATES, DeliveryRow, SourceRunRow


def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M:%S UTC") if value else "—"


def tables(
    engine: Engine, *, now: datetime, retry_days: int, lookups_on: bool = True
) -> Iterator[Table | str]:
    """The status report, piece by piece, for the CLI to print."""
    yield from _scheduler(engine)
    if engine.dialect.name == "postgresql":
        yield from _workers(engine, now)
    runs = ledger.source_runs(engine)
    lookups = runs.pop(RUN_NAME, None)
    if runs:
        yield from _sources(runs)
    line = _lookups(waiting_count(engine, now=now, retry_days=retry_days), lookups, lookups_on)
    yield from _wrapped(line, first="", rest="    ")
    counts = outbox.counts_by_status(engine)
    table = Table("state", "emails", title="Outbox")
    for state in STATES:
        # Only an unsubscribe cancels emails: most setups never have one to show.
        if state != "cancelled" or counts.get(state):
            table.add_row(state, str(counts.get(state, 0)))
    yield table
    yield _suppressed(readers.suppressed_count(engine))
    if rows := outbox.problem_rows(engine):
        yield from _problems(rows)


def _lookups(waiting: int, run: SourceRunRow | None, on: bool) -> str:
    """How many title-only papers wait for an arXiv lookup, and how the last run went."""
    line = f"arXiv lookups: {plural(waiting, 'paper')} known only by title waiting"
    if not on:
        line = f"{line}; off after ingests (DIGESTBOT_ENRICH=false), `digestbot enrich` runs them"
    if run is None:
        return f"{line}; never run."
    line += f"; last run {_minute(run.last_run_at)}"
    if run.error:
        return f"{line}, failed: {safe_text(run.error)}"
    return f"{line}, {run.new_papers} found."


def _suppressed(count: int) -> str:
    """How many addresses asked to get nothing more: the file may list them, they get no mail."""
    addresses = f"{count} address{'' if count == 1 else 'es'}"
    if not count:
        return f"Suppression list: {addresses}."
    return (
        f"Suppression list: {addresses} that unsubscribed; no mail goes to "
        f"{'it' if count == 1 else 'them'} (`digestbot resubscribe EMAIL` takes one off)."
    )


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


def _workers(engine: Engine, now: datetime) -> Iterator[Table | str]:
    """The live workers and the slices of shared work by state, with those given up on."""
    live = tasks.live_workers(engine, now=now, within=LIVE)
    if not live:
        yield "Workers: none live (start `digestbot worker`, or `digestbot run` without --no-work)."
    else:
        table = Table("worker", "since", "slices done", "emails sent", title="Workers")
        for row in live:
            table.add_row(row.name, _when(row.started_at), str(row.slices), str(row.emails))
        yield table
    counts = tasks.counts(engine)
    states = ", ".join(f"{counts.get(state, 0)} {state}" for state in TASK_STATES)
    yield f"Slices: {states}."
    for task in tasks.failed_tasks(engine)[:5]:
        yield from _wrapped(
            f"slice {task.first_id}-{task.last_id} of the {task.kind} round {task.round} failed "
            f"{task.attempts} times: {safe_text(task.error or '')}",
            first="",
            rest="    ",
        )


def _sources(runs: Mapping[str, SourceRunRow]) -> Iterator[Table | str]:
    """Each source's last ingest; then, for each that keeps failing, why."""
    sources = Table("source", "last ingest (UTC)", "new", "last success (UTC)", title="Sources")
    # A source's name is what tells sources apart: folded over lines, never cut.
    sources.columns[0].overflow = "fold"
    sources.columns[0].min_width = 16
    for name, run in sorted(runs.items()):
        sources.add_row(
            name, _minute(run.last_run_at), str(run.new_papers), _minute(run.last_success_at)
        )
    yield sources
    for name, run in sorted(runs.items()):
        if run.error:
            yield from _wrapped(
                f"{name} failing ({run.failures} in a row): {run.error}", first="", rest="    "
            )


def _minute(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M") if value else "never"


SHOWN_PROBLEMS = 20  # rows listed in full; after an outage there can be thousands


def _problems(rows: Sequence[DeliveryRow]) -> Iterator[str]:
    """The emails that need someone's attention or wait to be sent: unknown, failed, retry,
    and pending ones held back by an unreachable server; each with its recipient and why."""
    yield f"Needs attention ({len(rows)} email{'' if len(rows) == 1 else 's'})"
    for row in rows[:SHOWN_PROBLEMS]:
        yield f"  #{row.id} {row.status} {row.kind} to {row.recipient or '(unknown recipient)'}"
        tried = f"{row.attempts} attempt{'' if row.attempts == 1 else 's'}"
        if row.next_attempt_at:
            tried += f", next attempt {_minute(row.next_attempt_at)} UTC"
        yield f"      {tried}"
        if row.last_error:
            yield from _wrapped(row.last_error, first="      ", rest="      ")
        yield f"      Message-ID: {row.message_id}"
    if len(rows) > SHOWN_PROBLEMS:
        yield f"  … {len(rows) - SHOWN_PROBLEMS} more"


def _wrapped(text: str, *, first: str, rest: str) -> Iterator[str]:
    """`text` wrapped to the terminal's width (at least 60 columns)."""
    width = max(60, shutil.get_terminal_size().columns)
    yield from textwrap.wrap(
        safe_text(text),
        width,
        initial_indent=first,
        subsequent_indent=rest,
        break_on_hyphens=False,
    ) or [first]
