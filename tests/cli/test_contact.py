"""Tests for DIGESTBOT_CONTACT through the CLI: the footer of what readers get names it (or
the sender when it is unset), and a contact that is not one line stops the run."""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from conftest import SmtpServer
from helpers import SENDER, prepare
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.settings import Settings
from digestbot.store.engine import make_engine


@pytest.fixture
def send_now(settings: Settings, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """`digestbot send-now` to the loopback SMTP server, on a database holding one reader
    with papers new to them."""
    engine = make_engine(settings.database_url)
    prepare(engine, datetime.now(UTC), count=1)
    engine.dispose()
    for name, value in {
        "DIGESTBOT_DATABASE_URL": settings.database_url,
        "DIGESTBOT_SMTP_HOST": smtp_server.host,
        "DIGESTBOT_SMTP_PORT": str(smtp_server.port),
        "DIGESTBOT_SMTP_TLS": "none",
        "DIGESTBOT_FROM_ADDRESS": SENDER,
    }.items():
        monkeypatch.setenv(name, value)

    def invoke() -> object:
        return CliRunner().invoke(app, ["send-now"], catch_exceptions=False)

    return invoke


def parts(message: EmailMessage) -> tuple[str, str]:
    """The text part (its wrapped lines joined) and the HTML part of `message`."""
    text, html = (message.get_body((kind,)) for kind in ("plain", "html"))
    assert text is not None and html is not None
    return " ".join(str(text.get_content()).split()), str(html.get_content())


def test_the_contact_setting_is_named_in_every_part_of_the_email(  # type: ignore[no-untyped-def]
    send_now, smtp_server: SmtpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DIGESTBOT_CONTACT set, the email sent names it in its text part and, escaped, in
    its HTML part."""
    monkeypatch.setenv("DIGESTBOT_CONTACT", "Jane Doe <jane@lab.example>")
    result = send_now()
    assert result.exit_code == 0, result.stderr
    (message,) = smtp_server.inbox.messages
    text, html = parts(message)
    assert "write to Jane Doe <jane@lab.example>." in text
    assert "write to Jane Doe &lt;jane@lab.example&gt;." in html


def test_without_a_contact_the_sender_is_the_contact(  # type: ignore[no-untyped-def]
    send_now, smtp_server: SmtpServer
) -> None:
    """With DIGESTBOT_CONTACT unset, the footer tells the reader to write to the sender."""
    result = send_now()
    assert result.exit_code == 0, result.stderr
    (message,) = smtp_server.inbox.messages
    for part in parts(message):
        assert f"Sent by {SENDER}." in part and f"write to {SENDER}." in part


def test_a_contact_of_more_than_one_line_is_an_error(  # type: ignore[no-untyped-def]
    send_now, smtp_server: SmtpServer, tmp_path: Path
) -> None:
    """A DIGESTBOT_CONTACT in .env holding a line break stops send-now with one `Error:`
    line naming it, and nobody is mailed."""
    (tmp_path / ".env").write_text(
        'DIGESTBOT_CONTACT="Jane Doe\\nBcc: everyone@lab.example"\n', encoding="utf-8"
    )
    result = send_now()
    assert result.exit_code == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("Error: DIGESTBOT_CONTACT: Value error, must be one line")
    assert smtp_server.inbox.envelopes == []


def test_a_mistyped_contact_setting_names_the_real_one(  # type: ignore[no-untyped-def]
    send_now, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DIGESTBOT_CONTACT is a known setting; DIGESTBOT_CONTACTS is an error naming it."""
    monkeypatch.setenv("DIGESTBOT_CONTACTS", "jane@lab.example")
    result = send_now()
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "Error: DIGESTBOT_CONTACTS (in the environment) is not a digestbot setting "
        "(did you mean DIGESTBOT_CONTACT?)"
    ]
