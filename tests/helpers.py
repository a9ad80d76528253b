"""Helpers several test modules share (fixtures themselves are in conftest): data to send,
rows to read, servers that misbehave, a digest to render."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from email import message_from_bytes, policy
from pathlib import Path
from typing import Any

from conftest import LISTING_000, smtp_at
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot import service
from digestbot.delivery import claims
from digestbot.delivery.pipeline import enqueue_digests
from digestbot.ingest.load import ingest_path
from digestbot.models import Digest, DigestItem, Match, Paper, Subscriber
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.tables import DeliveryRow

NOW = datetime(2026, 11, 3, 8, 0, tzinfo=UTC)


# A sender the CLI accepts for real SMTP: example.org is the placeholder it refuses, and the
# address check refuses `.test`; `.example` is reserved too, so nothing can ever be mailed.
SENDER = "digestbot@lab.example"

# One subscriber, Alice, following papers on transformers.
# Room for every transformer paper of the fixture listing, so nothing is left for a later
# digest: a second send right after has nothing new.
ALICE_YAML = """\
subscribers:
  - email: alice@example.org
    name: Alice
    max_papers: 50
    rules:
      - name: Transformers
        any: [transformer]
"""


HOSTILE = 'Evil <script>alert("x")</script>\r\nBcc: victim@evil.example'


def a_digest(title: str = "Flash attention, again", name: str = "Alice") -> Digest:
    sub = Subscriber(1, "alice@example.org", name, ())
    paper = Paper("p1", title, "We make attention fast. " * 30, NOW, upvotes=4, author_count=3)
    match = Match(("Efficient attention",), ("attention",), ("attention",), 2.0)
    return Digest(sub, (DigestItem(paper, match),), NOW, "manual:x")


def queued(engine: Engine, settings: Settings, now: datetime, count: int) -> list[int]:
    """Ids of `count` pending digests, planned and committed through the service."""
    prepare(engine, now, count=count)
    digests = service.plan_digests(engine, settings, now=now)
    return enqueue_digests(engine, settings, digests, now=now)


def race(url: str, ids: list[int], now: datetime) -> list[list[int]]:
    """Two claimers, each with its own engine on `url`, claim `ids` in the same order at the
    same moment; what each of them won."""
    engines = [make_engine(url) for _ in range(2)]
    won: list[list[int]] = [[], []]
    start = threading.Barrier(2)

    def claimer(n: int) -> None:
        start.wait()
        for row_id in ids:
            if claims.claim(engines[n], row_id, now=now, by=f"claimer{n}"):
                won[n].append(row_id)

    threads = [threading.Thread(target=claimer, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for engine in engines:
        engine.dispose()
    return won


def subscribers(count: int, terms: Sequence[str] = ("transformer",)) -> str:
    """A subscriptions file of readers 0 to `count` - 1, reader n's one rule any of
    `terms`[n % len(terms)], each with room for every paper of the fixture listing (so one
    digest holds all their papers and none is carried to a next one)."""
    people = "".join(
        f"  - email: reader{n}@example.org\n    max_papers: 50\n"
        f"    rules:\n      - any: [{terms[n % len(terms)]}]\n"
        for n in range(count)
    )
    return "subscribers:\n" + people


def prepare(
    engine: Engine, now: datetime, count: int = 3, terms: Sequence[str] = ("transformer",)
) -> None:
    ingest_path(engine, LISTING_000, now=now)
    spec = parse_subscriptions(subscribers(count, terms), source="s.yaml")
    sync_subscriptions(engine, spec, now=now)


def pointed(settings: Settings, port: int, **extra: Any) -> Settings:
    """`smtp_at` with short timeouts, few attempts and one connection unless `extra` says."""
    quick = {"smtp_timeout": 1.0, "retry_backoff": 60.0, "max_attempts": 3, "smtp_connections": 1}
    return smtp_at(settings, port, **{**quick, **extra})


def rows(engine: Engine) -> list[DeliveryRow]:
    with Session(engine) as session:
        return list(session.exec(select(DeliveryRow).order_by(DeliveryRow.id)))


class Inbox:
    """Accepts everything and keeps it; subclasses misbehave in one way each."""

    def __init__(self) -> None:
        self.messages: list[Any] = []
        self.sessions = 0

    async def handle_EHLO(self, server, session, envelope, hostname, responses):  # type: ignore[no-untyped-def]
        self.sessions += 1
        session.host_name = hostname
        return responses

    async def handle_DATA(self, server, session, envelope):  # type: ignore[no-untyped-def]
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


def host_environment() -> dict[str, str]:
    """This process's environment without digestbot's settings from the host, for a
    `digestbot` process of a test's own; arXiv lookups stay off as the test session has them."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("DIGESTBOT_") or k == "DIGESTBOT_ENRICH"
    }


def cli(
    settings: Settings, port: int, *args: str, extra: Mapping[str, str] | None = None
) -> subprocess.Popen[str]:
    """`python -m digestbot ARGS` in its own process, on the same database and server, from
    SENDER, one SMTP connection unless `extra` (more environment variables) says otherwise."""
    env = host_environment()
    env.update(
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_SMTP_HOST="127.0.0.1",
        DIGESTBOT_SMTP_PORT=str(port),
        DIGESTBOT_SMTP_TLS="none",
        DIGESTBOT_SMTP_CONNECTIONS="1",
        DIGESTBOT_FROM_ADDRESS=SENDER,
    )
    env.update(extra or {})
    return subprocess.Popen(
        [sys.executable, "-m", "digestbot", *args],
        env=env,
        text=True,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def marked(variable: str, prefix: str) -> dict[int, str]:
    """The live processes whose environment sets `variable` to a value starting with
    `prefix` (children inherit it, so this finds everything a command started): pid -> the
    rest of the value and the command line."""
    start = f"{variable}={prefix}".encode()
    found: dict[int, str] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            environ = (entry / "environ").read_bytes().split(b"\0")
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue  # gone meanwhile, or not ours to read
        for setting in environ:
            if setting.startswith(start):
                found[int(entry.name)] = f"{setting[len(start) :].decode()}: {command.strip()}"
    return found


def on_a_terminal(
    args: Sequence[str], env: dict[str, str], *, stdout_too: bool = False
) -> tuple[int, str]:
    """Run `digestbot ARGS` with stderr (and, with `stdout_too`, stdout; else stdout is
    dropped) on a pseudo-terminal: its exit status and all the terminal got."""
    leader, follower = pty.openpty()
    child = subprocess.Popen(
        [sys.executable, "-m", "digestbot", *args],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=follower if stdout_too else subprocess.DEVNULL,
        stderr=follower,
    )
    os.close(follower)
    chunks = []
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # EIO: the child closed its end of the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(leader)
    return child.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def wait_for(predicate: Callable[[], bool], timeout: float) -> bool:
    """Whether `predicate` comes true within `timeout` seconds (polled every 0.1 s)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return False


ADVISORY_LOCKS = "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND pid <> pg_backend_pid()"


def advisory_holders(connection: Any) -> list[int]:
    """The other PostgreSQL sessions holding an advisory lock, seen from `connection`."""
    return [pid for (pid,) in connection.execute(ADVISORY_LOCKS).fetchall()]
