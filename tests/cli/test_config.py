"""Tests for the CLI's settings check: unknown names, SMTP without a host, placeholders, and
the line saying where emails go."""

from __future__ import annotations

import signal
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

from conftest import SmtpServer, db_fingerprint
from helpers import SENDER, host_environment, prepare

from digestbot.settings import Settings
from digestbot.store.engine import make_engine


def digestbot(*args: str, **variables: str) -> subprocess.CompletedProcess[str]:
    """`python -m digestbot ARGS` in the current folder with only `variables` of digestbot's."""
    env = host_environment()
    env.update(variables)
    command = [sys.executable, "-m", "digestbot", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, check=False)


def ready(settings: Settings) -> str:
    """A database with a reader and papers new to them now; its fingerprint."""
    engine = make_engine(settings.database_url)
    prepare(engine, datetime.now(UTC), count=1)
    engine.dispose()
    return db_fingerprint(Path(settings.database_url.removeprefix("sqlite:///")))


def smtp_to(server: SmtpServer, **more: str) -> dict[str, str]:
    """The variables that send to `server` without TLS, and `more`."""
    base = {
        "DIGESTBOT_SMTP_HOST": server.host,
        "DIGESTBOT_SMTP_PORT": str(server.port),
        "DIGESTBOT_SMTP_TLS": "none",
    }
    return {**base, **more}


def test_a_mistyped_setting_is_an_error_naming_the_real_one(
    settings: Settings, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """DIGESTBOT_SMTP_SERVER instead of DIGESTBOT_SMTP_HOST stops send-now with exit 1,
    names DIGESTBOT_SMTP_HOST and neither writes nor sends anything."""
    before = ready(settings)
    done = digestbot(
        "send-now",
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_SMTP_SERVER=smtp_server.host,
    )
    assert done.returncode == 1, done.stdout
    assert done.stderr.splitlines() == [
        "Error: DIGESTBOT_SMTP_SERVER (in the environment) is not a digestbot setting "
        "(did you mean DIGESTBOT_SMTP_HOST?)"
    ]
    assert db_fingerprint(tmp_path / "digestbot.db") == before
    assert not (tmp_path / "outbox").exists()
    assert smtp_server.inbox.envelopes == []


def test_every_settings_problem_is_reported_at_once(settings: Settings, tmp_path: Path) -> None:
    """A misspelt name in `.env`, one in the environment, a bad value and SMTP settings
    without a host are four `Error:` lines of one run that changes nothing."""
    before = ready(settings)
    (tmp_path / ".env").write_text("DIGESTBOT_FROM_ADRESS=me@lab.example\n", encoding="utf-8")
    done = digestbot(
        "send-now",
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_SMTP_USER="me",
        DIGESTBOT_SMTP_PASSWORD="hunter2",
        DIGESTBOT_RETRY_BACKOFF="soon",
    )
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 4 and all(line.startswith("Error: ") for line in lines), lines
    assert "DIGESTBOT_SMTP_USER (in the environment)" in lines[0]
    assert "did you mean DIGESTBOT_SMTP_USERNAME?" in lines[0]
    assert "DIGESTBOT_FROM_ADRESS (in .env)" in lines[1]
    assert "did you mean DIGESTBOT_FROM_ADDRESS?" in lines[1]
    assert lines[2].startswith("Error: DIGESTBOT_SMTP_PASSWORD set but DIGESTBOT_SMTP_HOST is not")
    assert lines[3].startswith("Error: DIGESTBOT_RETRY_BACKOFF:")
    assert "hunter2" not in done.stderr
    assert db_fingerprint(tmp_path / "digestbot.db") == before
    assert not (tmp_path / "outbox").exists()


def test_smtp_settings_without_a_host_are_an_error_naming_the_host(
    settings: Settings, tmp_path: Path
) -> None:
    """A username, password and port with no DIGESTBOT_SMTP_HOST would silently write to the
    outbox: it is one error naming DIGESTBOT_SMTP_HOST, and nothing is recorded as sent."""
    before = ready(settings)
    done = digestbot(
        "send-now",
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_SMTP_USERNAME="me",
        DIGESTBOT_SMTP_PASSWORD="hunter2",
        DIGESTBOT_SMTP_PORT="2525",
    )
    assert done.returncode == 1
    (line,) = done.stderr.splitlines()
    assert line.startswith("Error: DIGESTBOT_SMTP_PORT, DIGESTBOT_SMTP_USERNAME, ")
    assert "set DIGESTBOT_SMTP_HOST" in line and "hunter2" not in line
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_transport_smtp_without_a_host_is_an_error_naming_the_host(
    settings: Settings, tmp_path: Path
) -> None:
    """DIGESTBOT_TRANSPORT=smtp with no host would mail whatever listens on localhost:25: one
    error naming DIGESTBOT_SMTP_HOST, and the database stays as it was."""
    before = ready(settings)
    done = digestbot(
        "send-now", DIGESTBOT_DATABASE_URL=settings.database_url, DIGESTBOT_TRANSPORT="smtp"
    )
    assert done.returncode == 1
    line = done.stderr.splitlines()[0]  # the placeholder sender is the next line
    assert line.startswith("Error: DIGESTBOT_TRANSPORT=smtp set but DIGESTBOT_SMTP_HOST is not")
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_send_now_says_where_emails_go(
    settings: Settings, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """With no host send-now says it writes to ./outbox; with one, the server, port and TLS."""
    ready(settings)
    url = settings.database_url
    variables = smtp_to(smtp_server, DIGESTBOT_FROM_ADDRESS=SENDER, DIGESTBOT_DATABASE_URL=url)
    to_server = digestbot("send-now", **variables)
    assert to_server.returncode == 0, to_server.stderr
    first = to_server.stderr.splitlines()[0]
    assert first == f"sending through 127.0.0.1:{smtp_server.port} (no TLS)"
    assert len(smtp_server.inbox.envelopes) == 1
    to_folder = digestbot("send-now", DIGESTBOT_DATABASE_URL=url)
    assert to_folder.returncode == 0, to_folder.stderr
    first = to_folder.stderr.splitlines()[0]
    assert first == "writing emails to ./outbox (no DIGESTBOT_SMTP_HOST set)"


def test_run_says_where_emails_go_before_it_starts(tmp_path: Path) -> None:
    """`digestbot run` names the SMTP server, port and TLS mode as its first line."""
    (tmp_path / "subscriptions.yaml").write_text("subscribers: []\n", encoding="utf-8")
    make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}").dispose()  # as `digestbot init` would
    env = host_environment()
    env.update(DIGESTBOT_SMTP_HOST="smtp.lab.example", DIGESTBOT_FROM_ADDRESS=SENDER)
    command = [sys.executable, "-m", "digestbot", "run"]
    daemon = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    try:
        assert daemon.stderr is not None
        first = daemon.stderr.readline()
        daemon.send_signal(signal.SIGTERM)
        daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
    assert first == "sending through smtp.lab.example:587 (STARTTLS)\n"


def test_real_smtp_from_the_placeholder_sender_is_refused(
    settings: Settings, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """send-now (its dry run too) and run over SMTP with DIGESTBOT_FROM_ADDRESS left at
    digestbot@example.org exit 1 with one line saying to set it; nobody is mailed, nothing is
    written."""
    before = ready(settings)
    for command in (["send-now"], ["send-now", "--dry-run"], ["run"]):
        done = digestbot(
            *command, DIGESTBOT_DATABASE_URL=settings.database_url, **smtp_to(smtp_server)
        )
        assert done.returncode == 1
        (line,) = done.stderr.splitlines()
        assert line.startswith("Error: DIGESTBOT_FROM_ADDRESS is the placeholder ")
        assert "set DIGESTBOT_FROM_ADDRESS" in line
    other = smtp_to(smtp_server, DIGESTBOT_FROM_ADDRESS="news@lists.example.com")
    done = digestbot("send-now", DIGESTBOT_DATABASE_URL=settings.database_url, **other)
    assert done.returncode == 1 and "DIGESTBOT_FROM_ADDRESS" in done.stderr
    assert smtp_server.inbox.envelopes == []
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_a_public_url_without_a_real_secret_key_is_refused(
    settings: Settings, tmp_path: Path, smtp_server: SmtpServer
) -> None:
    """With DIGESTBOT_PUBLIC_URL set, an unset, placeholder or short DIGESTBOT_SECRET_KEY stops
    every command with one line naming it, and the key never appears in it."""
    before = ready(settings)
    variables = smtp_to(
        smtp_server,
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_FROM_ADDRESS=SENDER,
        DIGESTBOT_PUBLIC_URL="https://papers.lab.example",
    )
    refused = [
        "short1",
        "change-me",
        "a long random string",
        "change-me-to-a-long-random-string",
        "your-secret-key-here-please",
        "aaaaaaaaaaaaaaaaaaaa",
    ]
    for secret in [{}, *({"DIGESTBOT_SECRET_KEY": key} for key in refused)]:
        for command in ("send-now", "status"):
            done = digestbot(command, **variables, **secret)
            assert done.returncode == 1
            (line,) = done.stderr.splitlines()
            assert line.startswith("Error: DIGESTBOT_PUBLIC_URL is set but DIGESTBOT_SECRET_KEY")
            assert all(key not in line for key in refused)
    assert smtp_server.inbox.envelopes == []
    assert db_fingerprint(tmp_path / "digestbot.db") == before


def test_the_settings_of_earlier_releases_say_what_replaced_them(settings: Settings) -> None:
    """DIGESTBOT_UNSUBSCRIBE_URL and _SECRET are refused, each naming its replacement."""
    ready(settings)
    done = digestbot(
        "status",
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_UNSUBSCRIBE_URL="https://lab.example/unsub",
        DIGESTBOT_UNSUBSCRIBE_SECRET="a-long-old-secret-value",
    )
    assert done.returncode == 1
    lines = sorted(done.stderr.splitlines())
    assert lines[0].startswith("Error: DIGESTBOT_UNSUBSCRIBE_SECRET (in the environment) is ")
    assert "replaced by DIGESTBOT_SECRET_KEY" in lines[0]
    assert "replaced by DIGESTBOT_PUBLIC_URL" in lines[1]
    assert "a-long-old-secret-value" not in done.stderr


def test_a_public_url_must_be_https_unless_it_is_this_machine(settings: Settings) -> None:
    """http:// is refused for a public host and accepted for localhost and 127.0.0.1."""
    ready(settings)
    key = {
        "DIGESTBOT_SECRET_KEY": "Zq3-vL9x_Tm2RkWp8sYd",
        "DIGESTBOT_DATABASE_URL": settings.database_url,
    }
    refused = digestbot("status", DIGESTBOT_PUBLIC_URL="http://papers.lab.example", **key)
    assert refused.returncode == 1
    assert "DIGESTBOT_PUBLIC_URL" in refused.stderr and "must be an https:// URL" in refused.stderr
    for local in ("http://127.0.0.1:8080", "http://localhost:8080/", "https://papers.lab.example"):
        done = digestbot("status", DIGESTBOT_PUBLIC_URL=local, **key)
        assert done.returncode == 0, done.stderr


def test_the_file_transport_still_works_with_the_defaults(
    settings: Settings, tmp_path: Path
) -> None:
    """With no SMTP host the placeholder sender and an unset secret still write the outbox."""
    ready(settings)
    done = digestbot(
        "send-now",
        DIGESTBOT_DATABASE_URL=settings.database_url,
    )
    assert done.returncode == 0, done.stderr
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1
