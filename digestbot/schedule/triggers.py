"""Schedule stage (pure): when the daemon's jobs fire, as APScheduler cron triggers."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from apscheduler.triggers.cron import CronTrigger

from digestbot.rules.sources import cron_trigger
from digestbot.schedule.periods import WEEKDAYS, hour_minute


def digest_trigger(timezone: str, send_at: str, frequency: str) -> CronTrigger:
    """The cron trigger for digests sent at `send_at` local time on `frequency`'s days."""
    hour, minute = hour_minute(send_at)
    weekday = {"daily": "*", "weekdays": "mon-fri"}.get(frequency)
    if weekday is None:
        weekday = frequency.removeprefix("weekly:")
        if weekday not in WEEKDAYS:
            raise ValueError(f"no digest frequency {frequency!r}")  # parsing refuses it
    return CronTrigger(day_of_week=weekday, hour=hour, minute=minute, timezone=ZoneInfo(timezone))


def missed_run(schedule: str, last_success: datetime | None, now: datetime) -> bool:
    """Whether the source's cron fired (while we were down) since its last good ingest."""
    if last_success is None:
        return True
    fire = cron_trigger(schedule).get_next_fire_time(None, last_success + timedelta(seconds=1))
    return fire is not None and fire <= now
