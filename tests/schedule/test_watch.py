"""Tests for the daemon's helpers: which failures of a streak are logged."""

from __future__ import annotations

from digestbot.schedule.watch import FailureStreak


def test_a_failure_streak_is_logged_at_its_first_and_doubling_failures() -> None:
    """Of 20 failures in a row the 1st, 2nd, 4th, 8th and 16th are logged; each says when
    the next one will be."""
    streak = FailureStreak()
    logged = [n for n in range(1, 21) if streak.failed()]
    assert logged == [1, 2, 4, 8, 16]
    assert streak.next_report() == 32


def test_success_ends_a_streak_and_says_how_long_it_was() -> None:
    """The first success reports the failures before it; the streak starts over."""
    streak = FailureStreak()
    for _ in range(5):
        streak.failed()
    assert streak.succeeded() == 5
    assert streak.succeeded() == 0
    assert streak.failed() is True
