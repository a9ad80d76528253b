"""Schedule stage: the lines `digestbot run` logs as it starts, saying what it runs with
(database, where emails go, the subscriptions file) and which jobs it runs when."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from datetime import UTC, datetime

from digestbot.compose.words import plural
from digestbot.delivery.where import where_emails_go
from digestbot.rules.subscriptions import SubscriptionsFile
from digestbot.settings import Settings
from digestbot.store.failures import shown


def setup_lines(settings: Settings, config: SubscriptionsFile) -> list[str]:
    """Where the daemon reads and writes: the database (its password hidden), the transport,
    and the subscriptions file with how many subscribers it lists (those who unsubscribed
    among them are logged as such when it is loaded)."""
    readers = plural(len(config.subscribers), "subscriber") + " listed"
    return [
        f"database: {shown(settings.database_url)}",
        f"emails: {where_emails_go(settings)}",
        f"subscriptions: {settings.subscriptions} ({readers})",
    ]


def job_lines(
    settings: Settings, config: SubscriptionsFile, next_runs: Mapping[str, datetime | None]
) -> list[str]:
    """One line per job: each source's ingest with its schedule, each digest time with its
    subscribers, the alerts and the tick; `next_runs` maps a job id to its next run."""

    def then(job_id: str) -> str:
        moment = next_runs.get(job_id)
        return f", next at {moment.astimezone(UTC):%Y-%m-%d %H:%M} UTC" if moment else ""

    lines = []
    for source in config.sources:
        name, cron = source.spec().name, source.effective_schedule()
        lines.append(f"job ingest {name}: cron {cron!r} (UTC){then(f'ingest {name}')}")
    if not config.sources:
        lines.append("no sources to ingest: the subscriptions file lists none")
    times = Counter(config.schedule_of(sub) for sub in config.subscribers)
    for (zone, at, frequency), readers in sorted(times.items(), key=lambda t: (t[0][1], t[0])):
        job_id = f"digests {at} {zone} {frequency}"
        lines.append(f"job {job_id}: {plural(readers, 'subscriber')}{then(job_id)}")
    alerting = sum(1 for sub in config.subscribers if any(r.mode == "alert" for r in sub.rules))
    lines.append(
        f"alerts: sent after each ingest with new papers, to {plural(alerting, 'subscriber')} "
        "with alert rules"
    )
    lines.append(
        f"job tick: every {settings.tick_seconds:g} s, sends what is due or waiting for a retry "
        "and reloads the subscriptions file when it changes"
    )
    return lines
