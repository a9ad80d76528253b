"""Tests for what `digestbot run` logs as it starts (database, transport, subscriptions,
jobs) and for keeping HTTP request lines to the debug level, on a real daemon process."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from conftest import FEEDS, HttpServer, Reply, SmtpServer
from helpers import SENDER, host_environment, wait_for

from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.schedule import ledger
from digestbot.schedule.startup import setup_lines
from digestbot.settings import Settings
from digestbot.store.engine import make_engine

TWO_READERS = """\
sources:
  - kind: hf
    schedule: "0 6 * * *"
  - kind: feed
    url: {feed}
subscribers:
  - email: alice@example.org
    send_at: "07:30"
    rules:
      - any: [transformer]
      - any: [diffusion]
        mode: alert
  - email: bob@example.org
    timezone: Europe/Paris
    send_at: "09:00"
    frequency: weekly:mon
    rules:
      - any: [diffusion]
"""


class Log:
    """The stderr of a running process, read line by line as it comes."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        assert process.stderr is not None
        stream = process.stderr
        self.reader = threading.Thread(target=lambda: self.lines.extend(stream), daemon=True)
        self.reader.start()

    @property
    def text(self) -> str:
        return "".join(self.lines)


@contextmanager
def daemon(tmp_path: Path, **variables: str) -> Iterator[Log]:
    """`digestbot run` in its own process with only `variables` of digestbot's settings; on
    leaving, SIGTERM, which must stop it with exit 0."""
    env = host_environment()
    env.update(variables)
    command = [sys.executable, "-m", "digestbot", "run"]
    process = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    log = Log(process)
    try:
        yield log
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=30)
        log.reader.join(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        log.reader.join(timeout=10)
        process.stderr.close()  # type: ignore[union-attr]
    assert process.returncode == 0, log.text


def test_the_daemon_logs_its_database_transport_subscriptions_and_jobs_at_start(
    tmp_path: Path, smtp_server: SmtpServer, http_server: HttpServer
) -> None:
    """A real `digestbot run` logs, one line each, the database, the SMTP server it sends
    through, the subscriptions file with the subscribers it lists, each source's ingest with its
    schedule, each digest time with its subscribers, the alerts and the tick."""
    feed = http_server.route("/feed.xml", Reply(404))
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(TWO_READERS.format(feed=feed), encoding="utf-8")
    db = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{db}")
    for name in ("hf", f"feed:{feed}"):  # just ingested: no catch-up ingest at start
        ledger.record_source_run(engine, name, now=datetime.now(UTC))
    engine.dispose()
    with daemon(
        tmp_path,
        DIGESTBOT_DATABASE_URL=f"sqlite:///{db}",
        DIGESTBOT_SUBSCRIPTIONS=str(subscriptions),
        DIGESTBOT_SMTP_HOST=smtp_server.host,
        DIGESTBOT_SMTP_PORT=str(smtp_server.port),
        DIGESTBOT_SMTP_TLS="none",
        DIGESTBOT_FROM_ADDRESS=SENDER,
        DIGESTBOT_HF_BASE_URL=http_server.base_url,
        DIGESTBOT_TICK_SECONDS="45",
    ) as log:
        assert wait_for(lambda: "running: " in log.text, 30), log.text
    said = [
        line.split("digestbot.run: ", 1)[1].rstrip("\n")
        for line in log.lines
        if "digestbot.run: " in line
    ]
    for expected in (
        f"database: sqlite:///{db}",
        f"emails: sending through 127.0.0.1:{smtp_server.port} (no TLS)",
        f"subscriptions: {subscriptions} (2 subscribers listed)",
        "job ingest hf: cron '0 6 * * *' (UTC), next at ",
        f"job ingest feed:{feed}: cron '0 */6 * * *' (UTC), next at ",
        "job digests 07:30 UTC daily: 1 subscriber, next at ",
        "job digests 09:00 Europe/Paris weekly:mon: 1 subscriber, next at ",
        "alerts: sent after each ingest with new papers, to 1 subscriber with alert rules",
        "job tick: every 45 s, sends what is due or waiting for a retry and reloads the "
        "subscriptions file when it changes",
    ):
        assert any(line.startswith(expected) for line in said), (expected, said)
    paris = next(line for line in said if "Europe/Paris" in line)
    assert paris.endswith((" 08:00 UTC", " 07:00 UTC")), paris  # 09:00 in Paris, in UTC
    assert http_server.requests == []  # nothing was fetched, so every line came from the start


def test_the_database_line_hides_a_password() -> None:
    """A PostgreSQL URL with a password is logged with *** in its place."""
    settings = Settings(
        database_url="postgresql://digest:hunter2@db.lab.example/digest",
        _env_file=None,  # type: ignore[call-arg]
    )
    config = parse_subscriptions("subscribers: []\n", source="s.yaml")
    lines = setup_lines(settings, config)
    assert lines[0] == "database: postgresql://digest:***@db.lab.example/digest"
    assert "hunter2" not in "\n".join(lines)
    assert lines[2] == "subscriptions: subscriptions.yaml (0 subscribers listed)"


def ingest_log(tmp_path: Path, http_server: HttpServer, **variables: str) -> str:
    """The log of a `digestbot run` whose catch-up ingest fetches the recorded HF listing
    from `http_server`, stopped once that ingest is logged."""
    http_server.route(
        "/api/daily_papers",
        Reply(body=(FEEDS / "hf_daily_papers_2025-01-16.json").read_bytes()),
    )
    subscriptions = tmp_path / "subscriptions.yaml"
    subscriptions.write_text(
        "sources:\n  - kind: hf\nsubscribers:\n  - email: alice@example.org\n"
        "    rules:\n      - any: [transformer]\n",
        encoding="utf-8",
    )
    make_engine(f"sqlite:///{tmp_path / 'bot.db'}").dispose()  # as `digestbot init` would
    with daemon(
        tmp_path,
        DIGESTBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'bot.db'}",
        DIGESTBOT_SUBSCRIPTIONS=str(subscriptions),
        DIGESTBOT_TRANSPORT="file",
        DIGESTBOT_HF_BASE_URL=http_server.base_url,
        **variables,
    ) as log:
        assert wait_for(lambda: "digestbot.run: ingest hf: " in log.text, 30), log.text
    assert http_server.hits("/api/daily_papers") >= 1
    return log.text


def test_http_request_lines_are_left_out_of_the_log_by_default(
    tmp_path: Path, http_server: HttpServer
) -> None:
    """At the default log level an ingest logs its result but no `HTTP Request` line."""
    log = ingest_log(tmp_path, http_server)
    assert "ingest hf: 4 new" in log
    assert "HTTP Request" not in log


def test_http_request_lines_are_logged_at_debug_level(
    tmp_path: Path, http_server: HttpServer
) -> None:
    """With DIGESTBOT_LOG_LEVEL=debug (any case) the same ingest logs each request it made,
    with the server's answer."""
    log = ingest_log(tmp_path, http_server, DIGESTBOT_LOG_LEVEL="DEBUG")
    assert "ingest hf: 4 new" in log
    assert f"HTTP Request: GET {http_server.base_url}/api/daily_papers" in log
    assert ' 200 OK"' in log, log  # the server answers in HTTP/1.0
