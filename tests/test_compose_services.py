"""Tests for deploy/compose.yaml's services working together without docker: its scheduler and
two workers, started with their own commands and environment, on one PostgreSQL database."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from conftest import LISTING_000, SmtpServer
from helpers import SENDER, host_environment, wait_for
from ruamel.yaml import YAML
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.schedule import tasks
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, SubscriberRow, TaskRow, WorkerRow

COMPOSE = Path(__file__).resolve().parent.parent / "deploy" / "compose.yaml"
READERS = 40
SLICE_SIZE = 2  # 20 slices: enough that both workers get some
# What the `.env` beside compose.yaml would hold here: the loopback server and quick pacing.
DOTENV = {
    "DIGESTBOT_SMTP_HOST": "127.0.0.1",
    "DIGESTBOT_SMTP_TLS": "none",
    "DIGESTBOT_SMTP_CONNECTIONS": "1",
    "DIGESTBOT_FROM_ADDRESS": SENDER,
    "DIGESTBOT_TICK_SECONDS": "0.5",
    "DIGESTBOT_SLICE_SIZE": str(SLICE_SIZE),
    "DIGESTBOT_WORKER_POLL": "0.1",
}


def services() -> dict[str, Any]:
    loaded = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return dict(loaded["services"])


def scheduler_and_worker() -> tuple[dict[str, Any], dict[str, Any]]:
    """The service whose command is `run` and the one whose command is `worker`."""
    (run,) = [s for s in services().values() if s.get("command", [""])[0] == "run"]
    (worker,) = [s for s in services().values() if s.get("command") == ["worker"]]
    return run, worker


def environment(service: dict[str, Any], folder: Path, url: str, port: int) -> dict[str, str]:
    """The service's environment on this host: its mounted files are `folder`'s, its database
    is `url`, and the `.env` stand-in points it at the SMTP server on `port`."""
    env = {**host_environment(), **DOTENV, "DIGESTBOT_SMTP_PORT": str(port)}
    mounts = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        mounts[target] = str(folder / Path(source).name)
    for name, value in service["environment"].items():
        env[name] = mounts.get(value, value)
    assert env["DIGESTBOT_DATABASE_URL"].startswith("postgresql+psycopg://")
    env["DIGESTBOT_DATABASE_URL"] = url
    return env


def readers(due: str) -> str:
    """READERS subscribers, each with one rule the fixture listing matches, due at `due` UTC."""
    people = "".join(
        f'  - email: reader{n}@example.org\n    send_at: "{due}"\n'
        "    rules:\n      - any: [transformer]\n"
        for n in range(READERS)
    )
    return "subscribers:\n" + people


class Processes:
    """The services' processes, each logging to its own file; killed if left at the end."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.started: list[tuple[subprocess.Popen[bytes], Path]] = []

    def start(self, command: list[str], env: dict[str, str]) -> subprocess.Popen[bytes]:
        log = self.folder / f"{command[0]}-{len(self.started)}.log"
        with log.open("wb") as sink:
            process = subprocess.Popen(
                [sys.executable, "-m", "digestbot", *command],
                env=env,
                cwd=self.folder,
                stdout=sink,
                stderr=sink,
            )
        self.started.append((process, log))
        return process

    def logs(self) -> str:
        return "\n".join(log.read_text(errors="replace") for _, log in self.started)

    def stop_all(self) -> list[int]:
        """SIGTERM to each; their exit statuses."""
        for process, _ in self.started:
            process.send_signal(signal.SIGTERM)
        return [process.wait(timeout=30) for process, _ in self.started]

    def kill_left(self) -> None:
        for process, _ in self.started:
            if process.poll() is None:
                process.kill()
                process.wait()


@pytest.fixture
def processes(tmp_path: Path) -> Iterator[Processes]:
    started = Processes(tmp_path)
    try:
        yield started
    finally:
        started.kill_left()


def slice_holders(engine: Engine) -> set[str]:
    """The host:pid names that hold or finished a slice."""
    with Session(engine) as session:
        return {t.worker for t in session.exec(select(TaskRow)) if t.worker}


def live_workers(engine: Engine) -> set[str]:
    """The host:pid names of the workers registered now."""
    with Session(engine) as session:
        return {w.name for w in session.exec(select(WorkerRow))}


def digests_per_reader(engine: Engine) -> Counter[str]:
    with Session(engine) as session:
        query = select(SubscriberRow.email).join(
            DeliveryRow, DeliveryRow.subscriber_id == SubscriberRow.id
        )
        return Counter(session.exec(query.where(DeliveryRow.kind == "digest")).all())


def test_the_compose_scheduler_and_two_workers_send_each_reader_one_digest(
    tmp_path: Path,
    pg_settings: Settings,
    pg_engine: Engine,
    smtp_server: SmtpServer,
    processes: Processes,
) -> None:
    """The compose file's `run` and two `worker` services, as processes with its commands and
    environment, send each of 40 due readers exactly one digest, the workers sharing slices."""
    now = datetime.now(UTC)
    text = readers((now - timedelta(minutes=2)).strftime("%H:%M"))
    (tmp_path / "subscriptions.yaml").write_text(text, encoding="utf-8")
    spec = parse_subscriptions(text, source="subscriptions.yaml")
    sync_subscriptions(pg_engine, spec, now=now - timedelta(days=1))
    ingest_path(pg_engine, LISTING_000, now=now - timedelta(hours=1))
    run, worker = scheduler_and_worker()
    url, port = pg_settings.database_url, smtp_server.port
    env = environment(worker, tmp_path, url, port)
    workers = [processes.start(worker["command"], env) for _ in range(2)]
    # Both workers wait for work before the scheduler makes the round, so both can take slices.
    assert wait_for(lambda: len(live_workers(pg_engine)) == 2, 30), processes.logs()
    processes.start(run["command"], environment(run, tmp_path, url, port))
    slices = READERS // SLICE_SIZE

    def finished() -> bool:
        done = tasks.counts(pg_engine) == {"done": slices}
        return done and len(smtp_server.inbox.envelopes) >= READERS

    assert wait_for(finished, 45), (tasks.counts(pg_engine), processes.logs())
    assert processes.stop_all() == [0, 0, 0], processes.logs()
    got = Counter(to for e in smtp_server.inbox.envelopes for to in e.rcpt_tos)
    expected = Counter({f"reader{n}@example.org": 1 for n in range(READERS)})
    assert got == expected
    assert digests_per_reader(pg_engine) == expected
    host = socket.gethostname()
    # --no-work or not, the slices went to both workers (a working `run` may add its own name).
    mine = {f"{host}:{w.pid}" for w in workers}
    assert mine <= slice_holders(pg_engine)
    if "--no-work" in run["command"]:
        assert slice_holders(pg_engine) == mine
