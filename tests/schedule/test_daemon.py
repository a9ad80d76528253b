"""Tests for the `digestbot run` daemon: triggers, DST under a travelling clock, live reload,
and a real daemon process with a clean SIGTERM stop."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import time_machine
from conftest import (
    FEEDS,
    LISTING_000,
    HttpServer,
    Reply,
    SmtpServer,
    Trickle,
    free_port,
    smtp_at,
)
from helpers import SENDER, Inbox, host_environment, wait_for
from sqlalchemy import Engine
from sqlmodel import Session, col, select

from digestbot import service
from digestbot.ingest.load import ingest_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.schedule import ledger
from digestbot.schedule.daemon import Daemon
from digestbot.schedule.triggers import digest_trigger, missed_run
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.tables import DeliveryRow, SubscriberRow

ONE_READER = """\
subscribers:
  - email: bob@example.org
    timezone: {tz}
    send_at: "{send_at}"
    send_empty: true
    rules:
      - any: [diffusion]
"""


def digest_keys(engine: Engine) -> list[str]:
    with Session(engine) as session:
        query = select(DeliveryRow.period_key).where(DeliveryRow.kind == "digest")
        return list(session.exec(query.order_by(col(DeliveryRow.id))))


def fires(trigger: object, start: datetime, count: int) -> list[datetime]:
    """The next `count` fire times of an APScheduler trigger, in UTC."""
    out, moment = [], start
    for _ in range(count):
        moment = trigger.get_next_fire_time(None, moment)  # type: ignore[attr-defined]
        out.append(moment.astimezone(UTC))
        moment += timedelta(minutes=1)
    return out


def test_digest_jobs_fire_at_local_time_on_their_days() -> None:
    """weekly:mon at 07:30 in Berlin fires Mondays at 06:30 UTC in winter."""
    trigger = digest_trigger("Europe/Berlin", "07:30", "weekly:mon")
    start = datetime(2026, 11, 24, tzinfo=UTC)
    assert fires(trigger, start, 2) == [
        datetime(2026, 11, 30, 6, 30, tzinfo=UTC),
        datetime(2026, 12, 7, 6, 30, tzinfo=UTC),
    ]


def test_a_missed_source_run_is_noticed_at_start() -> None:
    """A cron fire between the last good ingest and now means the source must be ingested."""
    last = datetime(2026, 11, 24, 5, 0, tzinfo=UTC)
    assert missed_run("0 */2 * * *", last, last + timedelta(hours=2, minutes=1))
    assert not missed_run("0 */2 * * *", last, last + timedelta(minutes=59))
    assert missed_run("0 */2 * * *", None, last)


@pytest.fixture
def daemon_settings(settings: Settings, tmp_path: Path) -> Settings:
    """File-transport settings whose subscriptions file lives in tmp_path."""
    return settings.model_copy(update={"subscriptions": tmp_path / "subscriptions.yaml"})


@pytest.mark.parametrize(
    ("tz", "start", "send_at"),
    [
        ("Europe/Berlin", datetime(2026, 3, 28, 0, 0, tzinfo=UTC), "02:30"),  # 02:30 skipped
        ("Europe/Berlin", datetime(2026, 10, 24, 0, 0, tzinfo=UTC), "02:30"),  # 02:30 twice
        ("Europe/Berlin", datetime(2026, 10, 24, 0, 0, tzinfo=UTC), "02:00"),
        ("America/New_York", datetime(2026, 3, 7, 5, 0, tzinfo=UTC), "02:30"),  # skipped
        ("America/New_York", datetime(2026, 10, 31, 4, 0, tzinfo=UTC), "01:30"),  # twice
    ],
)
async def test_ticks_across_a_dst_change_send_one_digest_per_local_day(
    daemon_settings: Settings, engine: Engine, tz: str, start: datetime, send_at: str
) -> None:
    """Ticking every 30 minutes through three days (and firing the cron job as APScheduler
    would, twice on the fall-back day) gives exactly one digest per local day."""
    daemon_settings.subscriptions.write_text(ONE_READER.format(tz=tz, send_at=send_at))
    daemon = Daemon(daemon_settings, engine)
    daemon.reload(now=start)
    end = start + timedelta(days=3)
    cron = [t for t in fires(digest_trigger(tz, send_at, "daily"), start, 4) if t < end]
    moments = sorted({start + timedelta(minutes=30 * i) for i in range(3 * 48)} | set(cron))
    for moment in moments:
        with time_machine.travel(moment, tick=False):
            await daemon.tick()
    day = start.date()
    assert digest_keys(engine) == [str(day + timedelta(days=n)) for n in (0, 1, 2)]


async def test_a_valid_edit_takes_effect_and_an_invalid_one_keeps_the_last_good(
    daemon_settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """Adding a subscriber reloads the jobs; a broken edit is logged and changes nothing."""
    path = daemon_settings.subscriptions
    path.write_text(ONE_READER.format(tz="Europe/Berlin", send_at="08:00"))
    daemon = Daemon(daemon_settings, engine)
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    daemon.reload(now=now)
    assert {j.id for j in daemon.scheduler.get_jobs()} == {
        "digests 08:00 Europe/Berlin daily",
        "tick",
    }
    path.write_text(
        ONE_READER.format(tz="Europe/Berlin", send_at="08:00")
        + '  - email: dan@example.org\n    send_at: "06:15"\n    rules:\n      - any: [x]\n'
    )
    assert daemon.reload(now=now)
    assert "digests 06:15 UTC daily" in {j.id for j in daemon.scheduler.get_jobs()}
    with Session(engine) as session:
        assert len(session.exec(select(SubscriberRow)).all()) == 2
    path.write_text("subscribers:\n  - email: not-an-address\n    rules: []\n")
    with caplog.at_level(logging.ERROR, logger="digestbot.run"):
        assert not daemon.reload(now=now)
    assert "last good one stays in force" in caplog.text and "subscriptions.yaml:2" in caplog.text
    assert "digests 06:15 UTC daily" in {j.id for j in daemon.scheduler.get_jobs()}
    with Session(engine) as session:
        assert all(row.active for row in session.exec(select(SubscriberRow)))


def test_the_daemon_delivers_digest_and_alert_then_stops_cleanly_on_sigterm(
    tmp_path: Path, smtp_server: SmtpServer, http_server: HttpServer
) -> None:
    """A real `digestbot run`: catch-up digest at start, an ingest due within seconds sends an
    alert, a second instance is refused, SIGTERM exits 0 and releases the lease."""
    http_server.route(
        "/api/daily_papers",
        Reply(body=(FEEDS / "hf_daily_papers_2025-01-16.json").read_bytes()),
    )
    now = datetime.now(UTC)
    due = (now - timedelta(minutes=2)).strftime("%H:%M")
    (tmp_path / "subscriptions.yaml").write_text(
        'sources:\n  - kind: hf\n    schedule: "*/5 * * * * *"\n'
        f'subscribers:\n  - email: alice@example.org\n    send_at: "{due}"\n    rules:\n'
        "      - any: [transformer]\n      - any: [diffusion]\n        mode: alert\n"
    )
    db = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{db}")
    yesterday = now - timedelta(days=1)
    text = (tmp_path / "subscriptions.yaml").read_text()
    sync_subscriptions(engine, parse_subscriptions(text, source="s.yaml"), now=yesterday)
    ingest_path(engine, LISTING_000, now=now - timedelta(hours=1))
    ledger.record_source_run(engine, "hf", now=now)  # so the only ingest is the scheduled one
    env = {
        **os.environ,
        "DIGESTBOT_DATABASE_URL": f"sqlite:///{db}",
        "DIGESTBOT_SUBSCRIPTIONS": str(tmp_path / "subscriptions.yaml"),
        "DIGESTBOT_SMTP_HOST": smtp_server.host,
        "DIGESTBOT_SMTP_PORT": str(smtp_server.port),
        "DIGESTBOT_SMTP_TLS": "none",
        "DIGESTBOT_FROM_ADDRESS": SENDER,
        "DIGESTBOT_HF_BASE_URL": http_server.base_url,
        "DIGESTBOT_TICK_SECONDS": "1",
    }
    command = [sys.executable, "-m", "digestbot", "run"]
    daemon = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        subjects = lambda: [str(m["Subject"]) for m in smtp_server.inbox.messages]  # noqa: E731
        assert wait_for(lambda: len(subjects()) >= 2, 45), subjects()
        assert any(s.startswith("Alert: ") and "Diffusion" in s for s in subjects())
        second = subprocess.run(
            command, env=env, cwd=tmp_path, capture_output=True, text=True, timeout=30
        )
        assert second.returncode == 1
        assert "Error: another `digestbot run`" in second.stderr
        shown = subprocess.run(
            [sys.executable, "-m", "digestbot", "status"],
            env=env,
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert "Scheduler: running" in shown.stdout and "ingest hf" in shown.stdout
        assert "tick" in shown.stdout and "│ hf" in shown.stdout
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=20)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    assert "ingest hf: 4 new" in log and "alerts: 1 queued" in log and "stopped" in log
    assert len(smtp_server.inbox.messages) == 2
    assert ledger.lease(engine) is None
    engine.dispose()


def test_sigterm_cancels_a_fetch_in_flight_at_once(tmp_path: Path, trickle_server: Trickle) -> None:
    """A `digestbot run` whose catch-up ingest is stuck on a trickling server (within a 60 s
    timeout) exits 0 within seconds of SIGTERM, saying the fetch was stopped."""
    (tmp_path / "subscriptions.yaml").write_text(
        f"sources:\n  - kind: feed\n    url: {trickle_server.url}\n"
        + ONE_READER.format(tz="UTC", send_at="08:00")
    )
    env = {
        **os.environ,
        "DIGESTBOT_DATABASE_URL": f"sqlite:///{tmp_path / 'bot.db'}",
        "DIGESTBOT_SUBSCRIPTIONS": str(tmp_path / "subscriptions.yaml"),
        "DIGESTBOT_TRANSPORT": "file",
        "DIGESTBOT_HTTP_TIMEOUT": "60",
        "DIGESTBOT_HTTP_RETRIES": "0",
    }
    # The daemon needs a database: loading the subscriptions makes it, as a person would.
    sync = [sys.executable, "-m", "digestbot", "subscriptions", "sync"]
    subprocess.run(sync, env=env, cwd=tmp_path, check=True, capture_output=True, timeout=60)
    command = [sys.executable, "-m", "digestbot", "run"]
    daemon = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: trickle_server.connections >= 1, 30)
        time.sleep(0.5)  # well into the answer, a byte at a time
        signalled = time.monotonic()
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=30)
        took = time.monotonic() - signalled
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    assert took < 3.0, log
    assert f"ingest feed:{trickle_server.url}: stopped before its fetch finished" in log


async def test_the_operator_is_emailed_once_when_a_source_keeps_failing(
    web_settings: Settings,
    engine: Engine,
    http_server: HttpServer,
    smtp_server: SmtpServer,
    tmp_path: Path,
) -> None:
    """After DIGESTBOT_ADMIN_ALERT_AFTER failed runs in a row the admin gets one email."""
    http_server.route("/api/daily_papers", Reply(status=503, body=b"down"))
    settings = smtp_at(
        web_settings,
        smtp_server.port,
        subscriptions=tmp_path / "subscriptions.yaml",
        admin_email="ops@example.org",
        admin_alert_after=2,
        http_retries=0,
    )
    settings.subscriptions.write_text(
        "sources:\n  - kind: hf\n" + ONE_READER.format(tz="Europe/Berlin", send_at="08:00")
    )
    daemon = Daemon(settings, engine)
    daemon.reload(now=datetime.now(UTC))
    assert daemon.config is not None
    for _ in range(3):
        await daemon.ingest(daemon.config.sources[0])
    (message,) = smtp_server.inbox.messages
    assert message["To"].addresses[0].addr_spec == "ops@example.org"
    assert message["Subject"] == "[digestbot] hf failed 2 times in a row"
    assert message.get_content_type() == "multipart/alternative"  # the admin.* templates
    assert "503" in message.get_body(("plain",)).get_content()
    run = ledger.source_runs(engine)["hf"]
    assert run.failures == 3 and run.last_success_at is None and "503" in (run.error or "")


async def test_delivery_failing_tick_after_tick_is_logged_and_reported_once(
    daemon_settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """An unreachable SMTP server is logged at its first failures; at the threshold the
    operator is told (here that fails too, since it is the same server, and says so)."""
    settings = smtp_at(
        daemon_settings, free_port(), admin_email="ops@example.org", admin_alert_after=2
    )
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    settings.subscriptions.write_text(ONE_READER.format(tz="Europe/Berlin", send_at="08:00"))
    ingest_path(engine, LISTING_000, now=now - timedelta(days=1))
    daemon = Daemon(settings, engine)
    daemon.reload(now=now - timedelta(days=1))
    with caplog.at_level(logging.INFO, logger="digestbot.run"):
        for minute in range(3):
            await daemon.deliver(now + timedelta(minutes=minute))
    assert "delivery failed (1 in a row, 1 email(s) waiting)" in caplog.text
    assert "delivery failed (2 in a row, 1 email(s) waiting)" in caplog.text
    assert caplog.text.count("could not email the operator") == 1
    assert [row.status for row in _rows(engine)] == ["pending"]


async def test_delivery_failures_are_logged_with_backoff_and_recovery_once(
    daemon_settings: Settings,
    engine: Engine,
    smtp_factory: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Ten ticks against a port nobody listens on give ERROR lines at failures 1, 2, 4 and
    8 only, each with the emails waiting; when a server appears, one line says delivery
    recovered and the digest goes out."""
    port = free_port()
    settings = smtp_at(daemon_settings, port, smtp_timeout=5.0)
    now = datetime(2026, 11, 24, 9, 0, tzinfo=UTC)
    settings.subscriptions.write_text(ONE_READER.format(tz="Europe/Berlin", send_at="08:00"))
    ingest_path(engine, LISTING_000, now=now - timedelta(days=1))
    daemon = Daemon(settings, engine, clock=lambda: now)
    daemon.reload(now=now - timedelta(days=1))
    with caplog.at_level(logging.INFO, logger="digestbot.run"):
        for _ in range(10):
            await daemon.tick()
        errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
        assert [m.split(":")[0] for m in errors] == [
            f"delivery failed ({n} in a row, 1 email(s) waiting)" for n in (1, 2, 4, 8)
        ]
        caplog.clear()
        inbox = Inbox()
        smtp_factory(inbox, port=port)
        await daemon.tick()
        await daemon.tick()
    assert caplog.text.count("delivery recovered after 10 failed ticks") == 1
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(inbox.messages) == 1


def _rows(engine: Engine) -> list[DeliveryRow]:
    with Session(engine) as session:
        return list(session.exec(select(DeliveryRow)))


def test_sigterm_during_a_scheduled_job_stops_it_cleanly_and_logs_no_error(
    tmp_path: Path, http_server: HttpServer
) -> None:
    """SIGTERM while a scheduled ingest waits on a slow server: its fetch is cancelled at once
    and logged as stopped, the daemon exits 0, and stderr holds no ERROR line and no
    traceback."""
    http_server.route(
        "/api/daily_papers",
        Reply(body=(FEEDS / "hf_daily_papers_2025-01-16.json").read_bytes(), delay=3.0),
    )
    (tmp_path / "subscriptions.yaml").write_text(
        'sources:\n  - kind: hf\n    schedule: "*/2 * * * * *"\n'
        "subscribers:\n  - email: alice@example.org\n    rules:\n      - any: [transformer]\n"
    )
    db = tmp_path / "bot.db"
    engine = make_engine(f"sqlite:///{db}")
    ledger.record_source_run(engine, "hf", now=datetime.now(UTC))  # no catch-up ingest
    engine.dispose()
    env = {
        **host_environment(),
        "DIGESTBOT_DATABASE_URL": f"sqlite:///{db}",
        "DIGESTBOT_SUBSCRIPTIONS": str(tmp_path / "subscriptions.yaml"),
        "DIGESTBOT_TRANSPORT": "file",
        "DIGESTBOT_HF_BASE_URL": http_server.base_url,
    }
    command = [sys.executable, "-m", "digestbot", "run"]
    daemon = subprocess.Popen(command, env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True)
    try:
        assert wait_for(lambda: http_server.hits("/api/daily_papers") > 0, 30)
        daemon.send_signal(signal.SIGTERM)
        _, log = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert daemon.returncode == 0, log
    assert "Traceback" not in log and " ERROR " not in log, log
    assert "ingest hf: stopped before its fetch finished" in log, log


async def test_a_failed_ingest_job_is_shown_as_failed_not_ok(
    web_settings: Settings, engine: Engine, http_server: HttpServer, tmp_path: Path
) -> None:
    """The ingest job's last result, which `status` shows, says it failed and why."""
    http_server.route("/api/daily_papers", Reply(status=503, body=b"down"))
    settings = web_settings.model_copy(
        update={"subscriptions": tmp_path / "subscriptions.yaml", "http_retries": 0}
    )
    settings.subscriptions.write_text(
        "sources:\n  - kind: hf\n" + ONE_READER.format(tz="Europe/Berlin", send_at="08:00")
    )
    daemon = Daemon(settings, engine)
    daemon.reload(now=datetime.now(UTC))
    (job,) = [j for j in daemon.scheduler.get_jobs() if j.id.startswith("ingest")]
    await job.func(*job.args)
    (row,) = [r for r in ledger.jobs(engine) if r.id == job.id]
    assert row.last_result is not None and row.last_result.startswith("error: ")
    assert "503" in row.last_result


def test_a_reload_keeps_an_unsubscribed_reader_inactive_and_warns_once_per_reload(
    daemon_settings: Settings, engine: Engine, caplog: pytest.LogCaptureFixture
) -> None:
    """The daemon's reload of a file that still lists a reader who left keeps them inactive
    and unplanned, logging the warning on each reload that finds them, not on every tick."""
    path = daemon_settings.subscriptions
    path.write_text(ONE_READER.format(tz="UTC", send_at="08:00"))
    daemon = Daemon(daemon_settings, engine)
    now = datetime(2026, 12, 5, 9, 0, tzinfo=UTC)
    daemon.reload(now=now)
    service.unsubscribe(engine, "bob@example.org", now=now, via="link")
    warning = "bob@example.org unsubscribed on 2026-12-05 via the link; remove them"
    with caplog.at_level(logging.WARNING, logger="digestbot.run"):
        path.write_text(ONE_READER.format(tz="UTC", send_at="08:30"))
        assert daemon.reload(now=now)
        assert not daemon.reload(now=now)  # unchanged file: nothing read, nothing logged
    assert caplog.text.count(warning) == 1
    assert service.plan_digests(engine, daemon_settings, now=now) == []
    with Session(engine) as session:
        assert not session.exec(select(SubscriberRow)).one().active
    restarted = Daemon(daemon_settings, engine)  # a restart reads the file afresh
    restarted.reload(now=now)
    assert service.plan_digests(engine, daemon_settings, now=now) == []
