"""Tests for workers sharing one period's digests on PostgreSQL: real `digestbot run` and
`digestbot worker` processes, a loopback SMTP server, SIGKILL and a dropped connection."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
from conftest import LISTING_000, SmtpServer
from helpers import SENDER, host_environment, subscribers, wait_for
from sqlalchemy import Engine, text
from sqlmodel import Session, select

from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, PeriodRow, TaskRow

READERS = 2000
DONE_TIMEOUT = 240.0


class Crew:
    """`digestbot run` and `digestbot worker` processes on one PostgreSQL database and one
    SMTP server, each logging to its own file; any left are killed at the end."""

    def __init__(self, folder: Path, database_url: str, port: int) -> None:
        self.folder, self.database_url = folder, database_url
        self.processes: list[tuple[subprocess.Popen[bytes], Path]] = []
        self.env = host_environment()
        self.env.update(
            DIGESTBOT_SUBSCRIPTIONS=str(folder / "subscriptions.yaml"),
            DIGESTBOT_SMTP_HOST="127.0.0.1",
            DIGESTBOT_SMTP_PORT=str(port),
            DIGESTBOT_SMTP_TLS="none",
            DIGESTBOT_TRANSPORT="smtp",
            DIGESTBOT_FROM_ADDRESS=SENDER,
            DIGESTBOT_TICK_SECONDS="1",
            DIGESTBOT_SLICE_SIZE="100",
            DIGESTBOT_WORKER_POLL="0.2",
            DIGESTBOT_WORKER_LEASE="5",
            DIGESTBOT_RENDER_PROCESSES="0",
        )

    def start(self, *command: str, name: str = "") -> subprocess.Popen[bytes]:
        """Start `digestbot COMMAND`; `name` tags its database sessions (application_name)."""
        env = dict(self.env)
        tag = name or f"{command[0]}-{len(self.processes)}"
        env["DIGESTBOT_DATABASE_URL"] = f"{self.database_url}?application_name={tag}"
        log = self.folder / f"{tag}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "digestbot", *command],
                env=env,
                cwd=self.folder,
                stdout=sink,
                stderr=sink,
            )
        self.processes.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}\n{log.read_text()}" for _, log in self.processes)

    def stop_all(self) -> None:
        for process, _ in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process, _ in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def crew(
    tmp_path: Path, pg_settings: Settings, pg_engine: Engine, smtp_server: SmtpServer
) -> Iterator[Crew]:
    """READERS readers whose daily digest fell due an hour ago, papers for all of them, and
    a crew to start processes on them."""
    now = datetime.now(UTC)
    due = (now - timedelta(hours=1)).strftime("%H:%M")
    listed = subscribers(READERS).replace(
        "max_papers: 50\n", f'max_papers: 3\n    send_at: "{due}"\n'
    )
    (tmp_path / "subscriptions.yaml").write_text(listed)
    # Known since yesterday, so the period that fell due an hour ago is theirs.
    spec = parse_subscriptions(listed, source="subscriptions.yaml")
    sync_subscriptions(pg_engine, spec, now=now - timedelta(days=1))
    ingest_path(pg_engine, LISTING_000, now=now - timedelta(minutes=30))
    started = Crew(tmp_path, pg_settings.database_url, smtp_server.port)
    try:
        yield started
    finally:
        started.stop_all()


def finished(engine: Engine, inbox: SmtpServer, expected: int = READERS) -> bool:
    """Every reader's period decided, every slice done and nothing left to send."""
    with Session(engine) as session:
        periods = len(session.exec(select(PeriodRow.id)).all())
        open_rows = session.exec(
            select(DeliveryRow.id).where(DeliveryRow.status.in_(("pending", "sending")))  # type: ignore[attr-defined]
        ).all()
        waiting = session.exec(select(TaskRow.id).where(TaskRow.state != "done")).all()
    return periods == expected and not open_rows and not waiting


def one_each(engine: Engine, inbox: SmtpServer) -> None:
    """Each reader has one digest row and one period; the server got one email per reader,
    apart from any `unknown` row (a worker killed while handing it over), and never two."""
    with Session(engine) as session:
        digests = Counter(
            session.exec(select(DeliveryRow.subscriber_id).where(DeliveryRow.kind == "digest"))
        )
        periods = Counter(session.exec(select(PeriodRow.subscriber_id)))
        unknown = session.exec(select(DeliveryRow.id).where(DeliveryRow.status == "unknown"))
        unknown_count = len(unknown.all())
    assert len(digests) == READERS and set(digests.values()) == {1}
    assert len(periods) == READERS and set(periods.values()) == {1}
    received = Counter(r for e in inbox.inbox.envelopes for r in e.rcpt_tos)
    assert set(received.values()) == {1}, received.most_common(3)
    assert len(received) == READERS - unknown_count


def slice_workers(engine: Engine) -> set[str]:
    with Session(engine) as session:
        return {w for w in session.exec(select(TaskRow.worker)) if w}


def test_three_workers_and_a_scheduler_send_each_reader_one_digest(
    crew: Crew, pg_engine: Engine, smtp_server: SmtpServer
) -> None:
    """A scheduler that only schedules and three workers share 2,000 readers' period: each
    reader gets exactly one digest and every worker did slices."""
    crew.start("run", "--no-work")
    workers = [crew.start("worker") for _ in range(3)]
    assert wait_for(lambda: finished(pg_engine, smtp_server), DONE_TIMEOUT), crew.logs()
    one_each(pg_engine, smtp_server)
    owners = slice_workers(pg_engine)
    assert {f"{socket.gethostname()}:{w.pid}" for w in workers} == owners, crew.logs()


def working_on(engine: Engine, pid: int) -> bool:
    """Whether the process `pid` holds a slice it has not finished."""
    owner = f"{socket.gethostname()}:{pid}"
    with Session(engine) as session:
        query = select(TaskRow.id).where(TaskRow.worker == owner, TaskRow.state == "working")
        return session.exec(query).first() is not None


def test_a_worker_killed_mid_slice_leaves_each_reader_one_digest(
    crew: Crew, pg_engine: Engine, smtp_server: SmtpServer
) -> None:
    """SIGKILL to a worker holding a slice: its lease runs out, another worker takes the
    slice over, and each reader still gets exactly one digest."""
    crew.start("run", "--no-work")
    doomed = crew.start("worker")
    crew.start("worker")
    assert wait_for(lambda: working_on(pg_engine, doomed.pid), 60), crew.logs()
    doomed.send_signal(signal.SIGKILL)
    doomed.wait()
    crew.start("worker")
    assert wait_for(lambda: finished(pg_engine, smtp_server), DONE_TIMEOUT), crew.logs()
    one_each(pg_engine, smtp_server)
    with Session(pg_engine) as session:
        attempts = session.exec(select(TaskRow.attempts).where(TaskRow.attempts > 1)).all()
    assert attempts, "no slice was taken over from the killed worker"


def test_a_worker_that_loses_its_database_connection_mid_slice_recovers(
    crew: Crew, pg_settings: Settings, pg_engine: Engine, smtp_server: SmtpServer
) -> None:
    """The server ends a worker's sessions while it holds a slice: that attempt rolls back,
    the worker goes on, and each reader still gets exactly one digest."""
    crew.start("run", "--no-work")
    cut = crew.start("worker", name="cut-worker")
    crew.start("worker")
    assert wait_for(lambda: working_on(pg_engine, cut.pid), 60), crew.logs()
    with psycopg.connect(pg_settings.database_url, autocommit=True) as admin:
        ended = admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE application_name = 'cut-worker'"
        ).fetchall()
    assert ended
    assert wait_for(lambda: finished(pg_engine, smtp_server), DONE_TIMEOUT), crew.logs()
    one_each(pg_engine, smtp_server)
    assert cut.poll() is None, crew.logs()  # it lived through it
    with pg_engine.connect() as connection:
        retried = connection.execute(text("SELECT count(*) FROM work_tasks WHERE attempts > 1"))
        assert retried.scalar_one() >= 1, crew.logs()


def test_two_schedulers_started_at_once_one_schedules_and_both_work(
    crew: Crew, pg_engine: Engine, smtp_server: SmtpServer
) -> None:
    """Two `digestbot run` at the same moment: one holds the lease and schedules, the other
    says so and works; each reader gets exactly one digest."""
    first, second = crew.start("run"), crew.start("run")
    assert wait_for(lambda: finished(pg_engine, smtp_server), DONE_TIMEOUT), crew.logs()
    one_each(pg_engine, smtp_server)
    logs = crew.logs()
    assert logs.count("running: ") == 1, logs
    assert logs.count("this one works on its slices") == 1, logs
    assert first.poll() is None and second.poll() is None, logs
