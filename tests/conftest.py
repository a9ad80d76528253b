"""Shared fixtures: settings, database, SMTP server, clock and the recorded listings."""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import sqlite3
import subprocess
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import closing
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from playwright.sync_api import Browser, sync_playwright
from sqlalchemy import Engine
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.settings import Settings
from digestbot.store.engine import make_engine

FIXTURES = Path(__file__).parent / "fixtures"
LISTINGS = FIXTURES / "listings"
LISTING_000 = LISTINGS / "000_71ee6fcf9145397c.txt"
# aiosmtpd's Controller waits 1 s for its server to answer a first (TLS) connection: on a
# loaded host that is the likely cause of two failures of the TLS tests after benchmarks.
READY_TIMEOUT = 10.0


@pytest.fixture(autouse=True)
def _isolated_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Every test runs in its own folder with no DIGESTBOT_ variables from the host, and
    without arXiv lookups."""
    import os

    for name in list(os.environ):
        if name.startswith("DIGESTBOT_"):
            monkeypatch.delenv(name)
    # No test reaches arXiv: those about lookups point DIGESTBOT_ARXIV_API_BASE_URL at the
    # loopback stand-in and switch this back on.
    monkeypatch.setenv("DIGESTBOT_ENRICH", "false")
    monkeypatch.chdir(tmp_path)


@pytest.fixture
def clock() -> datetime:
    """A fixed, timezone-aware 'now'."""
    return datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


class Sleeps:
    """An injected `sleep` that records the waits asked for instead of waiting."""

    def __init__(self) -> None:
        self.waits: list[float] = []

    async def __call__(self, seconds: float) -> None:
        self.waits.append(seconds)


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    """Settings with a SQLite file and an outbox inside tmp_path, file transport."""
    return Settings(
        database_url=f"sqlite:///{tmp_path / 'digestbot.db'}",
        outbox_dir=tmp_path / "outbox",
        _env_file=None,  # type: ignore[call-arg]
    )


@pytest.fixture
def engine(settings: Settings) -> Iterator[Engine]:
    """The real SQLite database of `settings`, tables created."""
    engine = make_engine(settings.database_url)
    yield engine
    engine.dispose()


def db_fingerprint(path: Path) -> str:
    """A hash of every row of the SQLite file at `path` (after a WAL checkpoint): equal
    before and after a command means it changed nothing."""
    with closing(sqlite3.connect(path)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        dump = "\n".join(conn.iterdump())
    return hashlib.sha256(dump.encode()).hexdigest()


@dataclass
class Inbox:
    """What the loopback SMTP server accepted."""

    envelopes: list[Any] = field(default_factory=list)

    @property
    def messages(self) -> list[EmailMessage]:
        parsed = [message_from_bytes(e.content, policy=policy.default) for e in self.envelopes]
        return [m for m in parsed if isinstance(m, EmailMessage)]


class _Recorder:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.inbox.envelopes.append(envelope)
        return "250 Message accepted for delivery"


def free_port() -> int:
    """A TCP port on 127.0.0.1 nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class SmtpServer:
    """A running aiosmtpd server on loopback and what it received."""

    host: str
    port: int
    inbox: Inbox


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """A real SMTP server on 127.0.0.1 that records every message it accepts."""
    inbox = Inbox()
    port = free_port()
    controller = Controller(
        _Recorder(inbox), hostname="127.0.0.1", port=port, ready_timeout=READY_TIMEOUT
    )
    controller.start()
    try:
        yield SmtpServer("127.0.0.1", port, inbox)
    finally:
        controller.stop()


def smtp_at(settings: Settings, port: int, **extra: Any) -> Settings:
    """`settings` sending over SMTP without TLS to 127.0.0.1:`port`; `extra` sets more."""
    update = {"transport": "smtp", "smtp_host": "127.0.0.1", "smtp_port": port, "smtp_tls": "none"}
    return settings.model_copy(update={**update, **extra})


@pytest.fixture
def smtp_settings(settings: Settings, smtp_server: SmtpServer) -> Settings:
    """`settings` pointed at the loopback SMTP server, without TLS."""
    return smtp_at(settings, smtp_server.port, smtp_timeout=5.0)


@dataclass
class Reply:
    """One canned HTTP answer; `truncate` promises more bytes than it sends, then hangs up."""

    status: int = 200
    body: bytes = b""
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    truncate: bool = False


@dataclass
class HttpServer:
    """A real HTTP server on 127.0.0.1: each path answers its replies in turn, the last repeating.

    A reply with an ETag answers 304 to a request whose If-None-Match carries it, as real
    servers do.
    """

    base_url: str = ""
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str]]] = field(default_factory=list)

    def route(self, path: str, *replies: Reply) -> str:
        self.routes[path] = list(replies)
        return self.base_url + path

    def hits(self, path: str) -> int:
        return sum(1 for target, _ in self.requests if target.split("?")[0] == path)

    def answer(self, target: str, headers: dict[str, str]) -> Reply:
        self.requests.append((target, headers))
        replies = self.routes.get(target.split("?")[0])
        if not replies:
            return Reply(404, b"not found")
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        etag = reply.headers.get("ETag")
        if etag and headers.get("if-none-match") == etag:
            return Reply(304, b"", {"ETag": etag})
        return reply


def _handler(server: HttpServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = server.answer(self.path, headers)
            time.sleep(reply.delay)
            self.send_response(reply.status)
            for name, value in reply.headers.items():
                self.send_header(name, value)
            extra = 100 if reply.truncate else 0
            self.send_header("Content-Length", str(len(reply.body) + extra))
            self.end_headers()
            try:
                self.wfile.write(reply.body)
                self.wfile.flush()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout test); nothing to do
            if reply.truncate:
                self.close_connection = True

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def http_server() -> Iterator[HttpServer]:
    """A real HTTP server on 127.0.0.1 serving canned replies (recorded fixtures)."""
    state = HttpServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(state))
    httpd.daemon_threads = True
    state.base_url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()


@dataclass
class Trickle:
    """A server that trickles its answer: its URL and how many connections it accepted."""

    url: str
    connections: int = 0


@pytest.fixture
def trickle_server() -> Iterator[Trickle]:
    """A raw HTTP server on 127.0.0.1 that promises 40 bytes and sends one every 0.2 s,
    so no single read ever waits long."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.05)
    stop = threading.Event()
    state = Trickle(f"http://127.0.0.1:{listener.getsockname()[1]}/feed")

    def trickle(conn: socket.socket) -> None:
        with conn:
            conn.recv(65536)
            head = (
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 40\r\n\r\n"
            )
            try:
                conn.sendall(head)
                while not stop.wait(0.2):
                    conn.sendall(b" ")
            except OSError:
                pass  # the client hung up, as it should

    def accept() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            state.connections += 1
            threading.Thread(target=trickle, args=(conn,), daemon=True).start()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        stop.set()
        thread.join()
        listener.close()


FEEDS = FIXTURES / "feeds"


@pytest.fixture
def web_settings(settings: Settings, http_server: HttpServer) -> Settings:
    """`settings` with every listing service pointed at the loopback HTTP server, fast retries."""
    return settings.model_copy(
        update={
            "hf_base_url": http_server.base_url,
            "arxiv_rss_base_url": http_server.base_url,
            "arxiv_api_base_url": http_server.base_url,
            "arxiv_api_delay": 0.0,
            "http_timeout": 2.0,
            "http_retries": 2,
            "http_backoff": 0.0,
        }
    )


@pytest.fixture
def smtp_factory() -> Iterator[Any]:
    """Start aiosmtpd servers on loopback with a given handler (on a free port, or `port`:
    a server appearing where none was); all are stopped afterwards."""
    controllers: list[Controller] = []

    def start(handler: Any, port: int | None = None, **kwargs: Any) -> int:
        port = port or free_port()
        options = {"ready_timeout": READY_TIMEOUT, **kwargs}
        controller = Controller(handler, hostname="127.0.0.1", port=port, **options)
        controller.start()
        controllers.append(controller)
        return port

    yield start
    for controller in controllers:
        controller.stop()


@dataclass
class Postgres:
    """A throwaway PostgreSQL cluster on loopback, trusting local connections."""

    host: str
    port: int
    user: str = "digestbot"

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://{self.user}@{self.host}:{self.port}/{database}"


def _postgres_bindir() -> Path | None:
    """Where initdb and pg_ctl are: Debian's versioned folder, else the PATH."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def _cluster_owner() -> list[str]:
    """PostgreSQL refuses to run as root: as root, run its tools as `postgres` (or nobody)."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    pytest.fail("running as root and neither a postgres nor a nobody user exists")


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[Postgres]:
    """Start a PostgreSQL cluster with Debian's initdb/pg_ctl in a temporary folder.

    Skipped when the binaries are missing, unless CI is set: CI must not skip silently.
    """
    bindir = _postgres_bindir()
    if bindir is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but PostgreSQL (initdb, pg_ctl) is not installed")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    as_owner = _cluster_owner()
    folder = Path(tempfile.mkdtemp(prefix="digestbot-pg-"))
    if as_owner:
        shutil.chown(folder, as_owner[2])
    data, port = folder / "data", free_port()
    subprocess.run(
        [*as_owner, str(bindir / "initdb"), "-D", str(data), "-U", "digestbot",
         "--auth=trust", "-E", "UTF8", "--no-sync"],
        check=True, capture_output=True,
    )  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {folder} -F"  # no fsync: a throwaway cluster
    subprocess.run(
        [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-l", str(folder / "log"),
         "-w", "-o", options, "start"],
        check=True, capture_output=True,
    )  # fmt: skip
    try:
        yield Postgres("127.0.0.1", port)
    finally:
        subprocess.run(
            [*as_owner, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"],
            check=False, capture_output=True,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture
def pg_settings(settings: Settings, postgres_cluster: Postgres) -> Iterator[Settings]:
    """`settings` on a fresh, empty PostgreSQL database of the throwaway cluster."""
    import psycopg

    name = f"t{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name}")
    yield settings.model_copy(update={"database_url": postgres_cluster.url(name)})
    with psycopg.connect(postgres_cluster.url(), autocommit=True) as admin:
        admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def pg_engine(pg_settings: Settings) -> Iterator[Engine]:
    """The PostgreSQL database of `pg_settings`, tables created by our own db module."""
    engine = make_engine(pg_settings.database_url)
    yield engine
    engine.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, settings: Settings) -> str:
    """The SQLite file of `settings`, or a fresh database of the throwaway PostgreSQL cluster."""
    if request.param == "sqlite":
        return settings.database_url
    pg_settings: Settings = request.getfixturevalue("pg_settings")
    return pg_settings.database_url


ARTIFACTS = Path(os.environ.get("DIGESTBOT_ARTIFACTS") or Path(__file__).parent / "artifacts")
CHROMIUM = "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else shutil.which("chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's `chromium`, driven by Playwright), launched once per
    module; skipped when missing, except under CI, where it fails."""
    if CHROMIUM is None:
        if os.environ.get("CI"):
            pytest.fail("chromium is missing: .ci/run installs it with apt-get install chromium")
        pytest.skip("chromium is not installed (apt-get install chromium); CI runs this test")
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


@pytest.fixture
def run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """The CLI, invoked in-process (typer's CliRunner) on a database in tmp_path."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'digestbot.db'}")
    runner = CliRunner()

    def invoke(*args: str) -> object:
        return runner.invoke(app, list(args), catch_exceptions=False)

    return invoke


@pytest.fixture
def arxiv_api() -> Iterator[Any]:
    """The loopback arXiv API stand-in (tests/arxivapi.py) serving the fixture corpus in the
    current Atom shape, withheld entries hidden."""
    from arxivapi import ArxivApi

    with ArxivApi() as api:
        yield api
