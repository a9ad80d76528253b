"""Tests for delivering the outbox against real SMTP servers on loopback that misbehave."""

from __future__ import annotations

import asyncio
import itertools
import random
import signal
import sqlite3
import threading
import time
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import helpers
import pytest
from conftest import LISTINGS, free_port
from helpers import Inbox, cli, pointed, prepare, rows
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from digestbot import service
from digestbot.delivery import claims, outbox
from digestbot.delivery.pipeline import enqueue_digests
from digestbot.delivery.send import deliver, next_attempt
from digestbot.delivery.transport import TransportUnavailable
from digestbot.ingest.load import ingest_path
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.tables import DeliveryRow, SentPaperRow


class BusyOnce(Inbox):
    """451 for the first message, 250 after."""

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if not getattr(self, "refused", False):
            self.refused = True
            return "451 4.3.0 Try again later"
        return await super().handle_DATA(server, session, envelope)


class TryLater(Inbox):
    """451 for every message."""

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        return "451 4.3.0 Try again later"


class NoSuchUser(Inbox):
    """550 for reader1, everyone else accepted."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        if address.startswith("reader1@"):
            return "550 5.1.1 No such user"
        envelope.rcpt_tos.append(address)
        return "250 OK"


class SlowAtRcpt(Inbox):
    """Answers RCPT later than the client waits."""

    async def handle_RCPT(self, server, session, envelope, address, options):  # type: ignore[no-untyped-def]
        await asyncio.sleep(2.0)
        envelope.rcpt_tos.append(address)
        return "250 OK"


class AcceptsLate(Inbox):
    """Keeps each message, then waits `delay` seconds before answering the final '.'."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        await super().handle_DATA(server, session, envelope)
        await asyncio.sleep(self.delay)
        return "250 OK"


async def test_451_then_250_retries_later_and_then_sends(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """A 4xx puts the row in retry with a next attempt; when that time comes it is sent."""
    inbox = BusyOnce()
    target = pointed(settings, smtp_factory(inbox))
    prepare(engine, clock, count=1)
    _, report = await service.send_now(engine, target, now=clock)
    (row,) = rows(engine)
    assert (row.status, report.count("retry")) == ("retry", 1)
    assert row.next_attempt_at is not None
    assert clock + timedelta(seconds=30) <= row.next_attempt_at <= clock + timedelta(seconds=90)
    early = await deliver(engine, target, now=clock + timedelta(seconds=10))
    assert early.results == []
    later = await deliver(engine, target, now=row.next_attempt_at)
    assert later.count("sent") == 1 and len(inbox.messages) == 1
    (row,) = rows(engine)
    assert (row.status, row.attempts) == ("sent", 2)


async def test_temporary_failures_become_failed_after_the_last_attempt(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """After max_attempts temporary failures the row is failed and not tried again."""

    class AlwaysBusy(Inbox):
        async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
            return "421 4.7.0 Busy"

    target = pointed(settings, smtp_factory(AlwaysBusy()), max_attempts=2, retry_backoff=0.0)
    prepare(engine, clock, count=1)
    await service.send_now(engine, target, now=clock)
    await deliver(engine, target, now=clock + timedelta(seconds=1))
    (row,) = rows(engine)
    assert (row.status, row.attempts) == ("failed", 2)
    assert "421" in (row.last_error or "")


async def test_550_for_one_recipient_fails_that_row_and_the_rest_go_out(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """A permanent refusal is failed at once, without retry; the batch continues."""
    inbox = NoSuchUser()
    target = pointed(settings, smtp_factory(inbox))
    prepare(engine, clock, count=3)
    outcomes, _ = await service.send_now(engine, target, now=clock)
    assert {o.email: o.status for o in outcomes} == {
        "reader0@example.org": "sent",
        "reader1@example.org": "failed",
        "reader2@example.org": "sent",
    }
    assert len(inbox.messages) == 2
    failed = next(r for r in rows(engine) if r.status == "failed")
    assert failed.attempts == 1 and failed.next_attempt_at is None
    assert "550 5.1.1 No such user" in (failed.last_error or "")


async def test_a_slow_server_is_retried_not_failed(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """A timeout before the message went out is temporary."""
    target = pointed(settings, smtp_factory(SlowAtRcpt()), smtp_timeout=0.5)
    prepare(engine, clock, count=1)
    _, report = await service.send_now(engine, target, now=clock)
    assert report.count("retry") == 1
    assert rows(engine)[0].status == "retry"


async def test_a_server_that_stores_then_times_out_leaves_the_row_unknown(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """No reply after the body: unknown, not resent by a plain rerun, resent on request with
    the same Message-ID, and its papers count as sent only then."""
    inbox = AcceptsLate(2.0)  # stores, then never answers in time
    target = pointed(settings, smtp_factory(inbox), smtp_timeout=0.5)
    prepare(engine, clock, count=1)
    _, report = await service.send_now(engine, target, now=clock)
    assert report.count("unknown") == 1 and len(inbox.messages) == 1
    again, _ = await service.send_now(engine, target, now=clock + timedelta(hours=1))
    assert len(inbox.messages) == 1 and again[0].status == "nothing new"
    with Session(engine) as session:
        assert session.exec(select(SentPaperRow)).all() == []
    assert outbox.resend_unknown(engine, now=clock) == 1
    quick = pointed(settings, smtp_factory(Inbox_ := Inbox()))
    await deliver(engine, quick, now=clock + timedelta(hours=2))
    assert Inbox_.messages[0]["Message-ID"] == inbox.messages[0]["Message-ID"]
    assert rows(engine)[0].status == "sent"


def hangs_up(after_body: bool) -> Any:
    """A raw SMTP server that hangs up without a reply once DATA began: at the DATA command,
    or after reading the whole body (so it may have stored the message)."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220 flaky ESMTP\r\n")
        while line := await reader.readline():
            verb = line[:4].upper()
            if verb == b"DATA" and not after_body:
                break
            if verb == b"DATA":
                writer.write(b"354 go ahead\r\n")
                await writer.drain()
                while await reader.readline() not in (b".\r\n", b""):
                    pass
                break
            writer.write(b"250-flaky\r\n250 OK\r\n" if verb == b"EHLO" else b"250 OK\r\n")
            await writer.drain()
        writer.close()

    return handle


@pytest.mark.parametrize("after_body", [False, True], ids=["at-data", "after-body"])
async def test_a_connection_dropped_once_data_began_is_unknown_and_never_resent(
    engine: Engine, settings: Settings, clock: datetime, after_body: bool
) -> None:
    """A hang-up with no reply once DATA began (aiosmtplib cannot say whether the body's final
    "." went out) is unknown: not retried, and its papers are not planned again."""
    server = await asyncio.start_server(hangs_up(after_body), "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    target = pointed(settings, port, max_attempts=5, retry_backoff=0.0)
    try:
        prepare(engine, clock, count=1)
        _, report = await service.send_now(engine, target, now=clock)
        later = clock + timedelta(hours=1)
        outcomes, again = await service.send_now(engine, target, now=later)
    finally:
        server.close()
    assert report.count("unknown") == 1 and "during DATA" in report.results[0][2]
    assert [(r.status, r.attempts) for r in rows(engine)] == [("unknown", 1)]
    assert again.results == [] and [o.status for o in outcomes] == ["nothing new"]


async def test_starttls_is_required_when_configured(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """A server without STARTTLS gets nothing in clear text; rows stay pending."""
    inbox = Inbox()
    target = pointed(settings, smtp_factory(inbox), smtp_tls="starttls")
    prepare(engine, clock, count=2)
    with pytest.raises(TransportUnavailable, match="does not offer STARTTLS"):
        await service.send_now(engine, target, now=clock)
    assert inbox.messages == []
    assert {r.status for r in rows(engine)} == {"pending"}


async def test_a_refused_connection_leaves_every_row_pending(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Nobody listening: one error, nothing sent, nothing attempted."""
    prepare(engine, clock, count=3)
    with pytest.raises(TransportUnavailable, match="cannot connect"):
        await service.send_now(
            engine, pointed(settings, free_port(), smtp_connections=2), now=clock
        )
    assert [(r.status, r.attempts) for r in rows(engine)] == [("pending", 0)] * 3


async def test_rows_held_back_by_an_unreachable_server_say_why_until_they_go_out(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A scheduled delivery (no planning) that cannot connect notes why on every pending
    row, which `status` lists; once the server answers, the rows go out and the note is gone."""
    ids = helpers.queued(engine, settings, clock, count=2)
    port = free_port()
    with pytest.raises(TransportUnavailable):
        await deliver(engine, pointed(settings, port), now=clock)
    held = outbox.problem_rows(engine)
    assert [r.id for r in held] == ids and {r.status for r in held} == {"pending"}
    assert all(f"cannot connect to the SMTP server 127.0.0.1:{port}" in (r.last_error or "")
               for r in held)  # fmt: skip
    await deliver(engine, settings, now=clock)
    assert outbox.problem_rows(engine) == []
    assert {(r.status, r.last_error) for r in rows(engine)} == {("sent", None)}


class Overlapping(Inbox):
    """Holds each message a moment, noting how many are in flight at once and when each came."""

    def __init__(self) -> None:
        super().__init__()
        self.in_flight = 0
        self.peak = 0
        self.arrivals: list[float] = []

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.arrivals.append(time.monotonic())
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        await asyncio.sleep(0.05)
        self.in_flight -= 1
        return await super().handle_DATA(server, session, envelope)


async def test_each_connection_carries_many_messages_and_all_are_used(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """With three connections allowed, twelve digests go over exactly three SMTP sessions,
    three messages in flight at once."""
    inbox = Overlapping()
    target = pointed(settings, smtp_factory(inbox), smtp_connections=3)
    prepare(engine, clock, count=12)
    _, report = await service.send_now(engine, target, now=clock)
    assert report.count("sent") == 12 and len(inbox.messages) == 12
    assert (inbox.sessions, inbox.peak) == (3, 3)


async def test_more_smtp_connections_than_the_database_pool_holds_all_send(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """Twenty SMTP connections (SQLAlchemy's pool holds fifteen database connections) carry
    forty digests at once: their claims and closes share one database connection."""
    inbox = Overlapping()
    target = pointed(settings, smtp_factory(inbox), smtp_connections=20)
    prepare(engine, clock, count=40)
    _, report = await service.send_now(engine, target, now=clock)
    assert report.count("sent") == 40 and len(inbox.messages) == 40
    assert inbox.sessions == 20


async def test_the_rate_limit_spaces_messages_across_connections(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """At 10 messages a second over two connections, six messages reach the server over at
    least half a second, none of them before its slot in that pace."""
    inbox = Overlapping()
    target = pointed(settings, smtp_factory(inbox), smtp_rate=10.0, smtp_connections=2)
    prepare(engine, clock, count=6)
    await service.send_now(engine, target, now=clock)
    arrivals = sorted(inbox.arrivals)
    # The limiter spaces the sends' starts 0.1 s apart; a message arrives after its own round
    # trips, which on a busy machine vary by milliseconds or, in a stall, much more: a late
    # message then arrives just before the next one. So each is checked against its slot
    # (0.1 s x its place, less a margin), which a late arrival never fails and a burst does.
    late = [a - arrivals[0] - 0.1 * k for k, a in enumerate(arrivals)]
    assert len(arrivals) == 6 and arrivals[-1] - arrivals[0] >= 0.45 and min(late) >= -0.05


def test_retries_back_off_exponentially_with_jitter(settings: Settings, clock: datetime) -> None:
    """The nth retry waits base x 2^(n-1), scaled by a random factor from 0.5 to 1.5."""
    random.seed(5)
    for attempts in (1, 2, 3, 4):
        nominal = settings.retry_backoff * 2 ** (attempts - 1)
        waits = [
            (next_attempt(settings, attempts, clock) - clock).total_seconds() for _ in range(200)
        ]
        assert nominal * 0.5 <= min(waits) and max(waits) <= nominal * 1.5
        assert max(waits) - min(waits) > nominal * 0.8  # spread over most of the range


async def test_a_row_left_sending_by_a_dead_process_becomes_unknown(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A claim by a process that no longer exists is recovered as unknown, never resent."""
    prepare(engine, clock, count=1)
    digests = service.plan_digests(engine, settings, now=clock)
    enqueue_digests(engine, settings, digests, now=clock)
    (row,) = rows(engine)
    import socket

    assert claims.claim(engine, row.id or 0, now=clock, by=f"{socket.gethostname()}:999999")
    report = await deliver(engine, settings, now=clock)
    assert report.recovered == 1 and report.results == []
    assert rows(engine)[0].status == "unknown"


class Slow(Inbox):
    """Takes its time over each message, so a test can act mid-batch."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay
        self.arrived = threading.Event()

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        if len(self.messages) >= 2:
            self.arrived.set()
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def test_a_run_killed_mid_batch_loses_no_digest(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """kill -9 while sending; the rerun sends the rest, and exits 1 because the interrupted
    one is unknown until --resend-unknown sends it with the same Message-ID."""
    now = datetime.now(UTC)
    prepare(engine, now, count=6)
    slow = Slow(delay=0.5)
    port = smtp_factory(slow)
    first = cli(settings, port, "send-now")
    assert slow.arrived.wait(timeout=30), "the first run never reached its third message"
    first.send_signal(signal.SIGKILL)
    first.communicate()
    slow.delay = 0.0
    second = cli(settings, port, "send-now")
    out, errors = second.communicate(timeout=60)
    assert second.returncode == 1, errors
    assert "interrupted mid-send" in out
    statuses = [r.status for r in rows(engine)]
    assert statuses.count("unknown") == 1 and statuses.count("sent") == 5
    third = cli(settings, port, "send-now", "--resend-unknown")
    _, errors = third.communicate(timeout=60)
    assert third.returncode == 0, errors
    received: dict[str, set[str]] = {}
    for message in slow.messages:
        received.setdefault(str(message["To"]), set()).add(str(message["Message-ID"]))
    assert sorted(received) == [f"reader{n}@example.org" for n in range(6)]
    assert all(len(ids) == 1 for ids in received.values())
    assert {r.status for r in rows(engine)} == {"sent"}


@pytest.mark.parametrize("queued", [False, True])
def test_two_send_now_at_once_send_each_digest_once(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime, queued: bool
) -> None:
    """Two processes racing over the same outbox deliver every digest exactly once, whether
    they plan the digests (one re-plans) or both find them queued and race to claim them."""
    now = datetime.now(UTC)
    prepare(engine, now, count=8)
    if queued:
        enqueue_digests(engine, settings, service.plan_digests(engine, settings, now=now), now=now)
    inbox = Slow(delay=0.05)
    port = smtp_factory(inbox)
    runs = [cli(settings, port, "send-now") for _ in range(2)]
    for run in runs:
        _, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
    recipients = sorted(str(m["To"]) for m in inbox.messages)
    assert recipients == sorted(f"reader{n}@example.org" for n in range(8))
    assert len(rows(engine)) == 8


def test_three_send_now_at_once_on_a_big_batch_all_finish_and_send_each_digest_once(
    engine: Engine, settings: Settings, smtp_factory: Any
) -> None:
    """Runs started together over a batch committed in many chunks each exit 0: the later ones
    wait for the first to queue its batch, then find nothing left to plan."""
    now = datetime.now(UTC)
    prepare(engine, now, count=600)
    inbox = Inbox()
    port = smtp_factory(inbox)
    runs = [cli(settings, port, "send-now") for _ in range(3)]
    for run in runs:
        _, errors = run.communicate(timeout=240)
        assert run.returncode == 0, errors
    recipients = sorted(str(m["To"]) for m in inbox.messages)
    assert recipients == sorted(f"reader{n}@example.org" for n in range(600))


def test_send_now_plans_past_a_backlog_of_retries_that_it_sends_meanwhile(
    engine: Engine, settings: Settings, smtp_factory: Any
) -> None:
    """With hundreds of rows due for a retry (the server still says 451) and new papers in,
    send-now plans and exits 0 (retries are no failure), never "kept changing the outbox"."""
    now = datetime.now(UTC)
    prepare(engine, now - timedelta(hours=2), count=300)
    planned = service.plan_digests(engine, settings, now=now - timedelta(hours=1))
    ids = enqueue_digests(engine, settings, planned, now=now - timedelta(hours=1))
    with Session(engine) as session:
        for row in session.exec(select(DeliveryRow).where(col(DeliveryRow.id).in_(ids))):
            row.status, row.attempts, row.next_attempt_at = "retry", 1, now - timedelta(minutes=1)
            session.add(row)
        session.commit()
    ingest_path(engine, LISTINGS / "001_da432fa98501e883.txt", now=now)
    run = cli(settings, smtp_factory(TryLater()), "send-now")
    _, errors = run.communicate(timeout=240)
    assert run.returncode == 0, errors
    assert {r.status for r in rows(engine)} == {"retry"} and len(rows(engine)) > 300


async def test_a_halt_finishes_the_message_in_flight_and_takes_no_more(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """Halting mid-batch (a clean stop) lets the message being sent finish; the rest wait."""
    inbox = AcceptsLate(0.5)  # a moment to say 250
    target = pointed(settings, smtp_factory(inbox), smtp_timeout=5.0)
    prepare(engine, clock, count=4)
    enqueue_digests(engine, target, service.plan_digests(engine, target, now=clock), now=clock)
    halt = asyncio.Event()
    run = asyncio.create_task(deliver(engine, target, now=clock, halt=halt))
    while not inbox.messages:
        await asyncio.sleep(0.02)
    halt.set()
    report = await run
    assert report.count("sent") == 1
    assert sorted(row.status for row in rows(engine)) == ["pending", "pending", "pending", "sent"]


async def test_a_batch_longer_than_the_sending_lease_keeps_its_rows_alive(
    engine: Engine, settings: Settings, smtp_factory: Any
) -> None:
    """Each claim is stamped when it happens, so another run recovering crashed rows while a
    batch outlives DIGESTBOT_SENDING_LEASE never takes a live row for a crashed one."""
    start = datetime.now(UTC)
    prepare(engine, start - timedelta(hours=1), count=6)
    port = smtp_factory(Slow(0.3))
    lease = timedelta(seconds=1)
    recovered: list[int] = []
    done = threading.Event()

    def another_run() -> None:
        other = make_engine(settings.database_url)
        while not done.wait(0.1):
            recovered.append(outbox.recover(other, now=datetime.now(UTC), lease=lease))
        other.dispose()

    watcher = threading.Thread(target=another_run)
    watcher.start()
    try:
        _, report = await service.send_now(engine, pointed(settings, port), now=start)
    finally:
        done.set()
        watcher.join()
    assert report.count("sent") == 6
    assert len(recovered) > 10 and sum(recovered) == 0


async def test_a_write_lock_held_elsewhere_never_stalls_the_event_loop(
    engine: Engine, settings: Settings, smtp_factory: Any, clock: datetime
) -> None:
    """While another process holds the database's write lock, the batch's claims wait on
    their own thread: the event loop that drives the SMTP connections keeps running."""
    prepare(engine, clock, count=8)
    server = Slow(0.05)
    port = smtp_factory(server)
    path = settings.database_url.removeprefix("sqlite:///")

    def hold_the_lock() -> None:
        server.arrived.wait(10)
        with closing(sqlite3.connect(path, isolation_level=None)) as other:
            other.execute("BEGIN IMMEDIATE")
            time.sleep(1.5)
            other.execute("COMMIT")

    beats: list[float] = []

    async def heartbeat() -> None:
        while True:
            beats.append(time.monotonic())
            await asyncio.sleep(0.02)

    holder = threading.Thread(target=hold_the_lock)
    holder.start()
    beating = asyncio.ensure_future(heartbeat())
    try:
        _, report = await service.send_now(engine, pointed(settings, port), now=clock)
    finally:
        beating.cancel()
        holder.join()
    assert report.count("sent") == 8
    assert max(b - a for a, b in itertools.pairwise(beats)) < 0.5
