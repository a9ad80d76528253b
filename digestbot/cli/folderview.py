"""CLI: `ingest --all` over a folder source, one line per file read, one per problem."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import Engine

from digestbot.cli.common import err, out
from digestbot.compose.words import plural
from digestbot.errors import ListingError
from digestbot.ingest import papers
from digestbot.ingest.fetch import SourceSpec
from digestbot.ingest.folder import ingest_folder
from digestbot.ingest.textnorm import safe_text
from digestbot.schedule import ledger
from digestbot.settings import Settings


def ingest_folder_source(
    engine: Engine,
    settings: Settings,
    spec: SourceSpec,
    *,
    now: datetime,
    show: Callable[[papers.IngestResult], None],
) -> bool:
    """Ingest a folder source's new and changed files, `show` each, print each problem as an
    error line, and record the run as the daemon does; whether every file went in."""
    try:
        result = ingest_folder(
            engine,
            spec.path or "",
            source=spec.name,
            now=now,
            max_bytes=settings.http_policy.max_bytes,
        )
    except ListingError as exc:  # the folder is gone: this source fails, the others go on
        ledger.record_source_run(engine, spec.name, now=now, error=str(exc))
        err.print(f"Error: {safe_text(str(exc))}", markup=False)
        return False
    for one in result.ingested:
        show(one)
    for path in result.waiting:
        err.print(
            f"Note: {safe_text(path)}: modified just now; left for the next run", markup=False
        )
    for problem in result.problems:
        err.print(f"Error: {safe_text(problem.reason)}", markup=False)
    ledger.record_source_run(engine, spec.name, now=now, new=result.new, error=result.error())
    counts = [
        f"{plural(len(result.ingested), 'file')} ingested",
        f"{result.unchanged} unchanged",
        f"{len(result.waiting)} left for the next run" if result.waiting else "",
        f"{len(result.problems)} failed",
    ]
    summary = ", ".join(c for c in counts if c)
    out.print(f"{safe_text(spec.name)}: {summary}; {result.new} new papers", markup=False)
    return not result.problems
