"""`send-now` on a terminal: a rich progress bar while sending, then the summary line."""

from __future__ import annotations

import re
import subprocess
import sys
from datetime import UTC, datetime

from conftest import SmtpServer
from helpers import SENDER, host_environment, on_a_terminal, prepare
from sqlalchemy import Engine

from digestbot.settings import Settings

SUMMARY = "Summary: 4 sent, 0 retrying, 0 failed, 0 unknown."


def environment(settings: Settings, smtp_server: SmtpServer) -> dict[str, str]:
    env = host_environment()
    for name in ("CI", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)  # rich reads these; the test wants it to decide by the tty alone
    env.update(
        TERM="xterm-256color",
        COLUMNS="100",
        DIGESTBOT_DATABASE_URL=settings.database_url,
        DIGESTBOT_SMTP_HOST=smtp_server.host,
        DIGESTBOT_SMTP_PORT=str(smtp_server.port),
        DIGESTBOT_SMTP_TLS="none",
        DIGESTBOT_FROM_ADDRESS=SENDER,
    )
    return env


def test_it_shows_a_progress_bar_and_the_summary_on_a_terminal(
    engine: Engine, settings: Settings, smtp_server: SmtpServer
) -> None:
    """On a pseudo-terminal the output holds rich's bar, its description and the summary."""
    prepare(engine, datetime.now(UTC), count=4)
    status, output = on_a_terminal(
        ["send-now"], environment(settings, smtp_server), stdout_too=True
    )
    assert status == 0, output
    # rich draws the live bar as the description then coloured segments, redrawn in place
    assert re.search(r"\x1b\[2Ksending \x1b\[[0-9;]*m━", output), output[:300]
    assert SUMMARY in output
    assert len(smtp_server.inbox.envelopes) == 4


def test_it_prints_no_bar_when_the_output_is_not_a_terminal(
    engine: Engine, settings: Settings, smtp_server: SmtpServer
) -> None:
    """Piped, send-now prints the outcomes and the summary, and no bar nor escape codes."""
    prepare(engine, datetime.now(UTC), count=4)
    done = subprocess.run(
        [sys.executable, "-m", "digestbot", "send-now"],
        env=environment(settings, smtp_server),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert SUMMARY in done.stdout
    for stream in (done.stdout, done.stderr):
        # `sending through HOST:PORT` is the line naming the server, not the bar.
        assert "sending" not in stream.replace("sending through", "") and "\x1b[" not in stream
