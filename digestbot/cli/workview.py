"""CLI command `worker`: take a share of the digests and alerts of a PostgreSQL database."""

from __future__ import annotations

import asyncio
import signal

from digestbot.cli.common import (
    app,
    backend,
    friendly,
    load_settings,
    open_engine,
    say_where_emails_go,
)
from digestbot.cli.mail import start_logging
from digestbot.errors import ConfigError
from digestbot.schedule.worker import Worker


@app.command(short_help="Work on a PostgreSQL database's digests and alerts with the others.")
@friendly
def worker() -> None:
    """Work on a PostgreSQL database's digests and alerts beside any other workers: take a
    slice of subscribers at a time, match, render and queue their emails, send them.

    `digestbot run` schedules the work (one per database); start as many workers as you
    like, on any hosts that reach the database, each with the same settings as `run`. Each
    logs to stderr. DIGESTBOT_SLICE_SIZE sets the subscribers per slice,
    DIGESTBOT_WORKER_LEASE how long a silent worker keeps one, DIGESTBOT_WORKER_POLL how
    often an idle worker looks for work. On SQLite it refuses: `run` does it all there.

    Stop it with SIGTERM or Ctrl-C; the slice and the message in flight finish.
    """
    settings = load_settings(sends=True)
    kind = backend(settings.database_url)
    if kind != "postgresql":
        raise ConfigError(
            f"workers share a PostgreSQL database; DIGESTBOT_DATABASE_URL names {kind}, "
            "where `digestbot run` does all the work in one process",
            "use `digestbot run`, or move to PostgreSQL (see `digestbot db copy`)",
        )
    with open_engine(settings) as engine:
        say_where_emails_go(settings)
        start_logging(settings.log_level)
        asyncio.run(_work(Worker(settings, engine)))


async def _work(worker: Worker) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, worker.halt.set)
    try:
        await worker.run()
    finally:
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
