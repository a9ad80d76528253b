"""Schedule stage, daemon helpers: file edits noticed, failures logged sparingly, work stopped."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def file_stamp(path: Path) -> tuple[int, int] | None:
    """What tells an edit of `path` (its modification time and size), or None if unreadable."""
    try:
        stat = path.stat()
    except OSError:
        return None
    return (stat.st_mtime_ns, stat.st_size)


class FailureStreak:
    """Consecutive failures of one kind of work (delivery, tick after tick) and which of them
    deserve a log line: the 1st, 2nd, 4th, 8th… so a server down for a day is a dozen
    lines, not one a minute."""

    def __init__(self) -> None:
        self.count = 0

    def failed(self) -> bool:
        """Count one more failure; whether to log it (its number is a power of two)."""
        self.count += 1
        return self.count & (self.count - 1) == 0

    def next_report(self) -> int:
        """The number of the next failure that will be logged."""
        return 1 << self.count.bit_length()

    def succeeded(self) -> int:
        """End the streak; how many failures it had (0 when there is nothing to report)."""
        count, self.count = self.count, 0
        return count


async def unless_stopped(work: Coroutine[Any, Any, T], halt: asyncio.Event) -> T | None:
    """What `work` returns, or None when `halt` is set first: the work is cancelled then, so
    a stop never waits on a slow server."""
    task = asyncio.ensure_future(work)
    stopping = asyncio.ensure_future(halt.wait())
    try:
        await asyncio.wait({task, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
        if not task.done():
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    return None if task.cancelled() else task.result()
