"""Tests for how a delivery attempt closes its row: what a row that failed for good says."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from conftest import LISTING_000
from helpers import SENDER, rows
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.settings import Settings
from digestbot.store.engine import make_engine


class _AlwaysBusy:
    """Answers every recipient 451, a temporary refusal."""

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):  # type: ignore[no-untyped-def]
        return "451 4.3.0 Try again later"


def test_a_row_that_failed_for_good_says_it_gave_up_not_that_it_will_be_retried(
    settings: Settings, tmp_path: Path, smtp_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With DIGESTBOT_MAX_ATTEMPTS=1 a 451 closes the row `failed`; its last error and
    `status` say digestbot gave up after 1 attempt, not that it will be retried."""
    env = {
        "DIGESTBOT_DATABASE_URL": settings.database_url,
        "DIGESTBOT_SMTP_HOST": "127.0.0.1",
        "DIGESTBOT_SMTP_PORT": str(smtp_factory(_AlwaysBusy())),
        "DIGESTBOT_SMTP_TLS": "none",
        "DIGESTBOT_MAX_ATTEMPTS": "1",
        "DIGESTBOT_FROM_ADDRESS": SENDER,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    (tmp_path / "s.yaml").write_text(
        "subscribers:\n  - email: alice@example.org\n    rules:\n      - any: [transformer]\n"
    )
    runner = CliRunner()
    for args in (["ingest", str(LISTING_000)], ["subscriptions", "sync", "s.yaml"]):
        assert runner.invoke(app, args, catch_exceptions=False).exit_code == 0
    sent = runner.invoke(app, ["send-now"], catch_exceptions=False)
    assert sent.exit_code == 1 and "1 failed" in sent.stdout
    engine = make_engine(settings.database_url)
    (row,) = rows(engine)
    engine.dispose()
    assert row.status == "failed" and row.last_error is not None
    assert "451" in row.last_error and "gave up after 1 attempt" in row.last_error
    assert "retried" not in row.last_error
    wide = {**os.environ, "COLUMNS": "400"}  # the table's cells on one line each
    command = [sys.executable, "-m", "digestbot", "status"]
    shown = subprocess.run(command, env=wide, capture_output=True, text=True, check=True).stdout
    assert "gave up after 1 attempt" in shown and "retried" not in shown
