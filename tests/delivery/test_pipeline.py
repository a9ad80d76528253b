"""send-now renders and commits digests chunk by chunk while earlier chunks are being sent."""

from __future__ import annotations

import gc
import multiprocessing
import os
import re
import signal
import subprocess
import sys
import tempfile
import uuid
from dataclasses import replace
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

import pytest
from helpers import NOW, Inbox, cli, marked, pointed, prepare, rows, wait_for
from hypothesis import example, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from pydantic import SecretStr
from samples import SAMPLE_SUBSCRIBER, fixture_digest
from sqlalchemy import Engine, func
from sqlmodel import Session, select

import digestbot
from digestbot import service, tokens
from digestbot.delivery import claims, outbox
from digestbot.delivery.pipeline import (
    CHUNK,
    FIRST_CHUNK,
    SPREAD_OVER,
    render_chunk,
)
from digestbot.delivery.processes import render_pool
from digestbot.delivery.transport import Outbound
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.tables import DeliveryRow, SentPaperRow, SubscriberRow

BIG = SPREAD_OVER + 12  # a batch that render processes are worth starting for
# Two full chunks after the first: rendering them takes long enough (~0.5 s) that the first
# emails are on the wire before the last chunk is committed, even on a loaded machine.
LONG = FIRST_CHUNK + 2 * CHUNK


class Watching(Inbox):
    """Notes, as each message arrives, how many rows are committed and that row's state."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.engine = make_engine(database_url)
        self.seen: list[tuple[int, str | None]] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        with Session(self.engine) as db:
            total = db.exec(select(func.count()).select_from(DeliveryRow)).one()
            message = message_from_bytes(envelope.content, policy=policy.default)
            mine = db.exec(
                select(DeliveryRow.status).where(DeliveryRow.message_id == message["Message-ID"])
            ).first()
        self.seen.append((total, mine))
        return await super().handle_DATA(server, session, envelope)


async def test_it_starts_sending_once_the_first_chunk_is_committed(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """The first email arrives while later chunks are still being rendered, and every email
    arrives with its row already committed and claimed."""
    inbox = Watching(settings.database_url)
    target = pointed(settings, smtp_factory(inbox), render_processes=0, smtp_connections=2)
    prepare(engine, clock, count=LONG)
    _, report = await service.send_now(engine, target, now=clock)
    assert report.count("sent") == LONG == len(inbox.messages)
    assert inbox.seen[0][0] < LONG
    assert {status for _, status in inbox.seen} == {"sending"}
    inbox.engine.dispose()


async def test_it_renders_a_big_batch_in_a_render_process_and_sends_each_digest_once(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """With a render process the outcome is the same: each subscriber gets one digest and
    its papers are recorded as sent."""
    inbox = Inbox()
    target = pointed(settings, smtp_factory(inbox), render_processes=1, smtp_connections=2)
    prepare(engine, clock, count=BIG)
    outcomes, report = await service.send_now(engine, target, now=clock)
    recipients = sorted(str(m["To"]) for m in inbox.messages)
    assert recipients == sorted(f"reader{n}@example.org" for n in range(BIG))
    assert {o.status for o in outcomes} == {"sent"} and report.count("sent") == BIG
    with Session(engine) as session:
        recorded = len(session.exec(select(SentPaperRow)).all())
    assert recorded == sum(o.papers for o in outcomes) > 0
    assert {r.status for r in rows(engine)} == {"sent"}


async def test_each_row_goes_out_as_its_own_message_to_its_own_subscriber(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """Rows sent from the messages this run just rendered (not read back) still pair up:
    each Message-ID arrives once, addressed to the subscriber of the row that carries it."""
    inbox = Inbox()
    target = pointed(settings, smtp_factory(inbox), render_processes=1, smtp_connections=3)
    prepare(engine, clock, count=BIG)
    await service.send_now(engine, target, now=clock)
    arrived = {str(m["Message-ID"]): str(m["To"]) for m in inbox.messages}
    assert len(arrived) == len(inbox.messages) == BIG
    with Session(engine) as session:
        emails = dict(session.exec(select(SubscriberRow.id, SubscriberRow.email)).all())
    assert arrived == {r.message_id: emails[r.subscriber_id] for r in rows(engine)}


async def test_in_a_render_process_each_reader_gets_links_signed_for_them(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """With DIGESTBOT_PUBLIC_URL and a render process, every message's unsubscribe and vote
    links name the subscriber it is addressed to, and the votes name this digest's period."""
    inbox = Inbox()
    key = "s3cret-s3cret-s3cret"
    target = pointed(
        settings,
        smtp_factory(inbox),
        render_processes=1,
        public_url="https://lab.example",
        secret_key=SecretStr(key),
    )
    prepare(engine, clock, count=BIG)
    await service.send_now(engine, target, now=clock)
    with Session(engine) as session:
        ids = dict(session.exec(select(SubscriberRow.email, SubscriberRow.id)).all())
    periods = {r.subscriber_id: r.period_key for r in rows(engine)}
    assert len(inbox.messages) == BIG
    for message in inbox.messages:
        sid = ids[message["To"].addresses[0].addr_spec]
        text = message.get_body(("plain",)).get_content()
        (unsubscribe,) = re.findall(r"https://lab\.example/u/(\S+)", text)
        assert tokens.read_unsubscribe(key, unsubscribe) == sid
        votes = [tokens.read_vote(key, t) for t in re.findall(r"lab\.example/v/(\S+)", text)]
        assert votes and {(v.subscriber_id, v.digest) for v in votes if v} == {(sid, periods[sid])}
        assert None not in votes


NAMES = st.text(
    st.characters(blacklist_categories=("Cs",)) | st.sampled_from(',;:"@<>()\\'), max_size=200
)


@hypothesis_settings(max_examples=40, deadline=None)
@given(names=st.lists(NAMES, min_size=1, max_size=4))
@example(names=["Smith, John (Machine Learning Group, Department of Computer Science)"])
def test_the_envelope_recipient_is_the_subscribers_address_whatever_their_name(
    names: list[str],
) -> None:
    """For any display names, the envelope a row is sent with (read back from the database,
    as every send, retry and resend reads it) is exactly the subscriber's address."""
    with tempfile.TemporaryDirectory() as folder:
        target = Settings(database_url=f"sqlite:///{folder}/d.db", _env_file=None)  # type: ignore[call-arg]
        engine = make_engine(target.database_url)
        subscribers = [
            replace(SAMPLE_SUBSCRIBER, id=n + 1, email=f"reader{n}@example.org", name=name)
            for n, name in enumerate(names)
        ]
        prepare(engine, NOW, count=len(names))
        digests = [fixture_digest(NOW, s) for s in subscribers]
        ids = outbox.enqueue(engine, render_chunk(target, digests, NOW), now=NOW)
        claimed = [claims.claim(engine, i, now=NOW, by="test:1") for i in ids]
        engine.dispose()
    assert [c.outbound.recipients for c in claimed if c] == [(s.email,) for s in subscribers]


def parent_of(pid: int) -> int | None:
    """The parent's pid of a live process, from /proc; None once it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return int(stat.rpartition(")")[2].split()[1])


def test_render_processes_and_their_fork_server_die_with_a_killed_run(
    engine: Engine, settings: Settings, smtp_factory: Any
) -> None:
    """kill -9 while render processes run leaves no process behind: they and the fork
    server exit within seconds."""
    prepare(engine, datetime.now(UTC), count=1000)
    mark = uuid.uuid4().hex
    run = cli(settings, smtp_factory(Inbox()), "send-now", extra={"PROCESS_MARK": mark})

    def rendering() -> bool:  # the render processes are the run's grandchildren
        others = [pid for pid in marked("PROCESS_MARK", mark) if pid != run.pid]
        return sum(1 for pid in others if parent_of(pid) not in (run.pid, None)) >= 2

    try:
        assert wait_for(rendering, 60), "no render processes started"
    finally:
        run.kill()
        run.wait()  # not communicate(): processes left behind would hold its pipes open
        for pipe in (run.stdout, run.stderr):
            if pipe is not None:
                pipe.close()
    left = wait_for(lambda: not marked("PROCESS_MARK", mark), 10)
    for pid in marked("PROCESS_MARK", mark):
        os.kill(pid, signal.SIGKILL)
    assert left, "processes left behind"


def test_render_processes_are_forked_by_the_fork_server_where_there_is_one(
    settings: Settings,
) -> None:
    """A render process's parent is the fork server, not this process, where there is one."""
    with render_pool(settings.model_copy(update={"render_processes": 1})) as pool:
        parent = pool.submit(os.getppid).result()
    assert (parent != os.getpid()) == ("forkserver" in multiprocessing.get_all_start_methods())


@pytest.mark.skipif(
    "forkserver" not in multiprocessing.get_all_start_methods(), reason="no fork server here"
)
def test_render_processes_import_the_code_the_command_runs_not_a_folder_beside_it(
    tmp_path: Path,
) -> None:
    """Run in a folder holding another `digestbot/` (a checkout beside an installed copy),
    the render processes still use the code this process imported."""
    work, bin_dir = tmp_path / "checkout", tmp_path / "bin"
    (work / "digestbot").mkdir(parents=True)
    marker = tmp_path / "imported-from-the-folder"
    (work / "digestbot" / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    bin_dir.mkdir()
    # A script outside the folder, as a console script is: its own folder heads sys.path.
    (bin_dir / "run.py").write_text(
        "from digestbot.delivery.processes import render_pool\n"
        "from digestbot.settings import Settings\n"
        "if __name__ == '__main__':\n"
        "    settings = Settings(render_processes=1, _env_file=None)\n"
        "    with render_pool(settings) as pool:\n"
        "        print(pool.submit(eval, \"__import__('digestbot').__file__\").result())\n"
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("PYTHON")}
    run = subprocess.run(
        [sys.executable, str(bin_dir / "run.py")],
        cwd=work,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert (run.returncode, run.stdout.strip()) == (0, digestbot.__file__), run.stderr
    assert not marker.exists()


def test_rendering_leaves_no_cyclic_garbage(settings: Settings, clock: datetime) -> None:
    """What the render processes' rare collections rely on: rendering digests (the bundled
    templates, highlighting, the MIME message) frees everything by reference counting."""
    digests = [fixture_digest(clock)] * 20
    render_chunk(settings, digests[:1], clock)  # caches and templates filled first
    gc.collect()
    gc.disable()
    try:
        render_chunk(settings, digests, clock)
        assert gc.collect() == 0
    finally:
        gc.enable()


def test_it_refuses_a_later_chunk_when_another_run_enqueued_in_between(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A chunk after the first checks that the last row is still this run's own."""
    prepare(engine, clock, count=2)
    message = Outbound(b"x", "digestbot@example.org", ("reader@example.org",))
    (first, second) = [
        outbox.Outgoing(n + 1, "digest", f"p{n}", f"<m{n}@example.org>", message, ())
        for n in range(2)
    ]
    (mine,) = outbox.enqueue(engine, [first], now=clock)
    outbox.enqueue(engine, [second], now=clock)  # another run
    again = outbox.Outgoing(1, "digest", "p9", "<m9@example.org>", message, ())
    with pytest.raises(outbox.PlanConflict):
        outbox.enqueue(engine, [again], now=clock, after=mine)
