"""Crash trials: `digestbot send-now` for 2,000 readers, killed with SIGKILL at a seeded random
point of its planning, rendering or sending, then recovered as the README says (`send-now`,
then `send-now --resend-unknown`): every reader ends with exactly one digest, and no process
of the three runs is left behind."""

from __future__ import annotations

import os
import random
import shutil
import signal
import sqlite3
import subprocess
import time
import uuid
from collections import Counter
from contextlib import closing, suppress
from datetime import UTC, datetime
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import helpers
import pytest
from helpers import cli, prepare, wait_for

from digestbot.settings import Settings
from digestbot.store.engine import make_engine

READERS = 2000
# Each reader's one rule; every term matches 4 to 11 papers of the listing.
TERMS = ("diffusion", "survey", "vision", "inference")
TRIALS = 10
# The phase each trial's kill falls in, in turn: four of ten while rendering.
PHASES = ("rendering", "planning", "sending")
CONNECTIONS = 2
MARK = "CRASH_TRIAL_MARK"  # not a DIGESTBOT_ name: settings may refuse unknown ones
RUN_TIMEOUT = 120.0
UNKNOWN_NOW = "interrupted mid-send by an earlier run"  # the summary's line about them
GRACE = 5.0  # seconds the processes of a finished trial have to exit


class Recorder:
    """An SMTP handler keeping each accepted message's envelope recipient and Message-ID."""

    def __init__(self) -> None:
        self.received: list[tuple[str, str]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        head = envelope.content.split(b"\r\n\r\n", 1)[0]
        message_id = str(BytesHeaderParser().parsebytes(head)["Message-ID"])
        self.received.extend((rcpt.lower(), message_id) for rcpt in envelope.rcpt_tos)
        return "250 OK"


@pytest.fixture(scope="module")
def prepared(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding one listing and 2,000 readers whose rules match its papers."""
    path = tmp_path_factory.mktemp("crash-trials") / "prepared.db"
    engine = make_engine(f"sqlite:///{path}")
    prepare(engine, datetime.now(UTC), count=READERS, terms=TERMS)
    engine.dispose()
    with closing(sqlite3.connect(path)) as connection:
        connection.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    return path


def marked(trial_id: str) -> dict[int, str]:
    """The live processes of this trial: pid -> which run started them, and their command."""
    return helpers.marked(MARK, f"{trial_id}:")


def start(
    settings: Settings, port: int, trial_id: str, run: str, *args: str
) -> subprocess.Popen[str]:
    """`digestbot send-now ARGS` with render processes and two SMTP connections, marked."""
    extra = {
        "DIGESTBOT_SMTP_CONNECTIONS": str(CONNECTIONS),
        "DIGESTBOT_RENDER_PROCESSES": "2",
        MARK: f"{trial_id}:{run}",
    }
    return cli(settings, port, "send-now", *args, extra=extra)


class Watch:
    """What the run on trial has done so far, seen from outside: rows committed, messages
    received, processes it started."""

    def __init__(self, database: Path, recorder: Recorder, trial_id: str, pid: int) -> None:
        self.database, self.recorder, self.trial_id, self.pid = database, recorder, trial_id, pid
        self.started = time.monotonic()

    def rows(self) -> int:
        with closing(sqlite3.connect(self.database, timeout=5.0)) as connection:
            return int(connection.execute("SELECT count(*) FROM deliveries").fetchone()[0])

    def helpers(self) -> int:
        return len([pid for pid in marked(self.trial_id) if pid != self.pid])

    def state(self) -> str:
        return (
            f"at {time.monotonic() - self.started:.2f} s: {self.rows()} rows committed, "
            f"{len(self.recorder.received)} received, {self.helpers()} helper processes"
        )


def strike(run: subprocess.Popen[str], watch: Watch, phase: str, rng: random.Random) -> str:
    """Kill `run` with SIGKILL at this trial's point of `phase`; what it had done by then."""
    if phase == "planning":  # the render server is up, no digest is committed yet
        reached = wait_for(lambda: watch.helpers() > 0 or watch.rows() > 0, RUN_TIMEOUT)
        time.sleep(rng.uniform(0.0, 0.3))
    elif phase == "rendering":  # chunks are being rendered and committed, the first sent
        target = rng.randrange(8, READERS - 100)
        reached = wait_for(lambda: watch.rows() >= target, RUN_TIMEOUT)
    else:  # every digest is committed; only sending is left
        target = rng.randrange(READERS // 4, READERS - 100)
        reached = wait_for(
            lambda: watch.rows() >= READERS and len(watch.recorder.received) >= target,
            RUN_TIMEOUT,
        )
    assert reached and run.poll() is None, f"the run ended before its kill point ({phase})"
    run.send_signal(signal.SIGKILL)
    run.wait()
    # Not communicate(): processes the run left behind may hold its pipes open for good.
    for pipe in (run.stdout, run.stderr):
        if pipe is not None:
            pipe.close()
    return f"while {phase} {watch.state()}"


def recover(settings: Settings, port: int, trial_id: str) -> list[str]:
    """The README's recovery, `send-now` then `send-now --resend-unknown`; what went wrong.

    The rerun exits 1 exactly when it says emails were interrupted and are now `unknown`
    (the README: it exits 1 then); the resend exits 0."""
    problems = []
    for run, args in (("rerun", ()), ("resend", ("--resend-unknown",))):
        process = start(settings, port, trial_id, run, *args)
        output, errors = process.communicate(timeout=RUN_TIMEOUT)
        told = run == "rerun" and UNKNOWN_NOW in output
        if process.returncode != (1 if told else 0):
            last = errors.strip().splitlines()[-1:] or ["(no output)"]
            problems.append(f"the {run} exited {process.returncode}: {last[0]}")
    return problems


def left_behind(trial_id: str) -> list[str]:
    """The trial's processes still alive a few seconds after its last run ended."""
    if wait_for(lambda: not marked(trial_id), GRACE):
        return []
    return [f"left behind: {pid} ({what})" for pid, what in sorted(marked(trial_id).items())]


def outbox(database: Path) -> str:
    """The outbox by state, e.g. `2000 sent`."""
    with closing(sqlite3.connect(database)) as connection:
        found = connection.execute("SELECT status, count(*) FROM deliveries GROUP BY status")
        return ", ".join(f"{count} {status}" for status, count in found)


def digest_problems(received: list[tuple[str, str]]) -> list[str]:
    """Readers with no digest or two different ones; the same Message-ID twice (an `unknown`
    row resent, at most one per SMTP connection) is the documented duplicate."""
    readers: dict[str, Counter[str]] = {f"reader{n}@example.org": Counter() for n in range(READERS)}
    for recipient, message_id in received:
        readers.setdefault(recipient, Counter())[message_id] += 1
    none = sorted(r for r, ids in readers.items() if not ids)
    several = sorted(r for r, ids in readers.items() if len(ids) > 1)
    repeated = sorted(r for r, ids in readers.items() if ids.total() > len(ids))
    thrice = sorted(r for r, ids in readers.items() if max(ids.values(), default=0) > 2)
    problems = []
    for found, what in (
        (none, "got no digest"),
        (several, "got two or more different digests"),
        (thrice, "got the same digest three times or more"),
    ):
        if found:
            problems.append(f"{len(found)} readers {what} ({', '.join(found[:3])}…)")
    if len(repeated) > CONNECTIONS:
        problems.append(f"{len(repeated)} readers got a digest twice, more than one a connection")
    return problems


@pytest.mark.slow
@pytest.mark.parametrize("trial", range(TRIALS))
def test_every_reader_gets_one_digest_after_a_crash_and_recovery(
    trial: int, prepared: Path, settings: Settings, tmp_path: Path, smtp_factory: Any
) -> None:
    """A send-now killed with SIGKILL anywhere, then recovered as documented, leaves every
    reader with exactly one digest and none of its processes running."""
    shutil.copy(prepared, tmp_path / "digestbot.db")
    recorder = Recorder()
    port = smtp_factory(recorder)
    trial_id = uuid.uuid4().hex
    try:
        run = start(settings, port, trial_id, "killed")
        watch = Watch(tmp_path / "digestbot.db", recorder, trial_id, run.pid)
        rng = random.Random(f"crash-trial-{trial}")
        killed = strike(run, watch, PHASES[trial % len(PHASES)], rng)
        problems = recover(settings, port, trial_id) + left_behind(trial_id)
    finally:
        for pid in marked(trial_id):  # so that they do not outlive the test either
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
    problems += digest_problems(recorder.received)
    resent = len(recorder.received) - len(set(recorder.received))
    ended = f"killed {killed}; outbox {outbox(tmp_path / 'digestbot.db')}, {resent} resent"
    print(f"trial {trial}: {ended}; {'; '.join(problems) or 'one digest each'}")
    assert not problems, f"{ended}: " + "; ".join(problems)


def test_the_trials_fail_a_reader_with_no_digest_two_digests_or_one_too_often() -> None:
    """The trials' digest check finds each way a reader's digests can go wrong."""
    one_each = [(f"reader{n}@example.org", f"<{n}@x>") for n in range(READERS)]
    assert digest_problems(one_each) == []
    assert digest_problems(one_each + one_each[:CONNECTIONS]) == []  # the resent unknowns
    (lost,) = digest_problems(one_each[1:])
    (twice,) = digest_problems([*one_each, ("reader7@example.org", "<other@x>")])
    (thrice,) = digest_problems(one_each + one_each[:1] * 2)
    (too_many,) = digest_problems(one_each + one_each[: CONNECTIONS + 1])
    assert "1 readers got no digest (reader0@example.org" in lost
    assert "1 readers got two or more different digests (reader7@" in twice
    assert "1 readers got the same digest three times" in thrice
    assert f"{CONNECTIONS + 1} readers got a digest twice" in too_many
