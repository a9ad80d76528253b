"""Tests for digest periods: one per local send day, across timezones and DST changes."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from digestbot.schedule.periods import Period, latest_period, local_day_start, sends_on, slot

BERLIN_SPRING = datetime(2026, 3, 28, 12, tzinfo=UTC)  # clocks go forward on Mar 29 at 02:00
BERLIN_AUTUMN = datetime(2026, 10, 24, 12, tzinfo=UTC)  # clocks go back on Oct 25 at 03:00


def due_keys(tz: str, send_at: str, frequency: str, start: datetime, hours: int) -> list[str]:
    """Keys of the periods that became due, checked every 10 minutes for `hours` hours."""
    keys: list[str] = []
    for step in range(hours * 6):
        period = latest_period(tz, send_at, frequency, start + timedelta(minutes=10 * step))
        if period and period.due_at >= start and period.key not in keys:
            keys.append(period.key)
    return keys


def test_it_is_due_at_the_local_send_time_in_the_subscribers_timezone() -> None:
    """08:00 in New York in November is 13:00 UTC."""
    period = latest_period(
        "America/New_York", "08:00", "daily", datetime(2026, 11, 24, 13, 5, tzinfo=UTC)
    )
    assert period is not None
    assert (period.key, period.due_at) == ("2026-11-24", datetime(2026, 11, 24, 13, 0, tzinfo=UTC))


def test_before_todays_send_time_the_latest_period_is_yesterdays() -> None:
    """At 12:59 UTC the New York digest of the 24th is not due yet."""
    period = latest_period(
        "America/New_York", "08:00", "daily", datetime(2026, 11, 24, 12, 59, tzinfo=UTC)
    )
    assert period is not None and period.key == "2026-11-23"


def test_the_key_is_the_local_date_even_when_utc_is_on_another_day() -> None:
    """07:30 in Tokyo is 22:30 UTC the day before; the key is Tokyo's date."""
    period = latest_period(
        "Asia/Tokyo", "07:30", "daily", datetime(2026, 11, 24, 23, 0, tzinfo=UTC)
    )
    assert period is not None and period.key == "2026-11-25"


@pytest.mark.parametrize("send_at", ["02:30", "03:00", "08:00", "00:00"])
def test_spring_forward_day_has_exactly_one_period(send_at: str) -> None:
    """Each local day around the March change gets one period, even for a time in the gap."""
    assert due_keys("Europe/Berlin", send_at, "daily", BERLIN_SPRING, 72) == [
        "2026-03-29",
        "2026-03-30",
        "2026-03-31",
    ]


@pytest.mark.parametrize("send_at", ["02:30", "02:00", "08:00", "00:00"])
def test_fall_back_day_has_exactly_one_period(send_at: str) -> None:
    """Each local day around the October change gets one period, even for a repeated time."""
    assert due_keys("Europe/Berlin", send_at, "daily", BERLIN_AUTUMN, 72) == [
        "2026-10-25",
        "2026-10-26",
        "2026-10-27",
    ]


def test_a_time_in_the_spring_gap_is_sent_an_hour_later_on_the_clock() -> None:
    """02:30 does not exist on Mar 29 in Berlin; the digest goes at 03:30 CEST (01:30 UTC)."""
    due = slot(date(2026, 3, 29), "02:30", ZoneInfo("Europe/Berlin"))
    assert due == datetime(2026, 3, 29, 1, 30, tzinfo=UTC)


def test_weekdays_skip_the_weekend_and_weekly_sends_on_its_day() -> None:
    """Sat and Sun have no weekday period; weekly:mon only Mondays."""
    start = datetime(2026, 11, 20, 0, 0, tzinfo=UTC)  # a Friday
    assert due_keys("UTC", "08:00", "weekdays", start, 24 * 4) == ["2026-11-20", "2026-11-23"]
    assert due_keys("UTC", "08:00", "weekly:mon", start, 24 * 10) == ["2026-11-23"]
    assert not sends_on("weekly:mon", datetime(2026, 11, 24).date())


def test_a_period_is_due_from_its_exact_send_instant() -> None:
    """At 08:00 sharp today's period is the latest; a second before, yesterday's."""
    now = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
    assert latest_period("UTC", "08:00", "daily", now) == Period("2026-11-24", now)
    earlier = latest_period("UTC", "08:00", "daily", now - timedelta(seconds=1))
    assert earlier is not None and earlier.key == "2026-11-23"


def test_local_day_start_is_local_midnight() -> None:
    """Midnight in Berlin in winter is 23:00 UTC the day before."""
    start = local_day_start("Europe/Berlin", datetime(2026, 11, 24, 10, tzinfo=UTC))
    assert start == datetime(2026, 11, 23, 23, 0, tzinfo=UTC)
