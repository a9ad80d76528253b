"""Schedule stage (pure): when a subscriber's digest is due, one period per local day it is sent on.

A period's key is the subscriber's local date of the send, so a double fire, a restart or a
day with a DST change can never make two digests for the same day: the key is UNIQUE in the
outbox and in the period ledger.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@dataclass(frozen=True)
class Period:
    """One scheduled digest: its key (the local date) and the UTC instant it is due."""

    key: str
    due_at: datetime


def sends_on(frequency: str, day: date) -> bool:
    """Whether a `daily`, `weekdays` or `weekly:<day>` schedule sends on `day`."""
    if frequency == "daily":
        return True
    if frequency == "weekdays":
        return day.weekday() < 5
    return day.weekday() == WEEKDAYS.index(frequency.removeprefix("weekly:"))


def slot(day: date, send_at: str, zone: ZoneInfo) -> datetime:
    """The UTC instant of `send_at` on local `day`.

    On a spring-forward day a time inside the gap does not exist; fold=0 maps it to the
    instant the same wall-clock reading had just before the change (02:30 becomes 03:30 CEST).
    On a fall-back day a repeated time means its first occurrence. Either way: one slot a day.
    """
    return datetime.combine(day, time(*hour_minute(send_at)), tzinfo=zone).astimezone(UTC)


def hour_minute(send_at: str) -> tuple[int, int]:
    """`"08:30"` as (8, 30)."""
    hour, minute = send_at.split(":")
    return int(hour), int(minute)


def latest_period(timezone: str, send_at: str, frequency: str, now: datetime) -> Period | None:
    """The most recent period due at or before `now` (None if none in the last week)."""
    zone = ZoneInfo(timezone)
    today = now.astimezone(zone).date()
    for back in range(8):
        day = today - timedelta(days=back)
        if sends_on(frequency, day):
            due = slot(day, send_at, zone)
            if due <= now:
                return Period(day.isoformat(), due)
    return None


def local_day_start(timezone: str, now: datetime) -> datetime:
    """The UTC instant the subscriber's local day containing `now` began."""
    zone = ZoneInfo(timezone)
    return datetime.combine(now.astimezone(zone).date(), time(0), tzinfo=zone).astimezone(UTC)
