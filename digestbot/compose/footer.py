"""Compose stage (pure): the words an email's footer needs about how often a digest comes."""

from __future__ import annotations

_CADENCES = {"daily": "daily digest", "weekdays": "weekday digest"}


def cadence(frequency: str) -> str:
    """What a digest sent at `frequency` is called: a `daily digest`, a `weekday digest`,
    a `weekly digest` (any `weekly:<day>`), else just a `digest`."""
    weekly = frequency.startswith("weekly")
    return _CADENCES.get(frequency, "weekly digest" if weekly else "digest")
