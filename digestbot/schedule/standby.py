"""Schedule stage: a `digestbot run` that finds another one scheduling: the refusal it gives
(SQLite, or told not to work) or, on PostgreSQL, the wait to take scheduling over."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from sqlalchemy import Engine

from digestbot.errors import ConfigError
from digestbot.schedule import ledger
from digestbot.store.lock import DaemonLock, try_daemon_lock

log = logging.getLogger("digestbot.run")


def refusal(engine: Engine) -> ConfigError:
    """The error for a second `run`, naming the first from the lease row if it has one."""
    holder = ledger.lease(engine)
    who = f" ({holder.owner})" if holder else ""
    since = f" since {holder.acquired_at:%Y-%m-%d %H:%M:%S} UTC" if holder else ""
    what = f"another `digestbot run`{who} is using this database{since}"
    return ConfigError(what, "stop it first")


async def stand_by(engine: Engine, halt: asyncio.Event, every: float) -> DaemonLock | None:
    """Wait while another `run` schedules, trying its lock `every` seconds: the lock once
    that one stops, or None when this one is halted first."""
    while not halt.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(halt.wait(), timeout=every)
        if not halt.is_set() and (lock := try_daemon_lock(engine)) is not None:
            log.info("the other `digestbot run` stopped; this one schedules now")
            return lock
    return None
