"""Tests for `digestbot demo` in a folder that holds a real setup."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from conftest import SmtpServer, db_fingerprint
from helpers import NOW, SENDER, host_environment, prepare

from digestbot.store.engine import make_engine


def test_the_demo_never_touches_a_real_setup(tmp_path: Path, smtp_server: SmtpServer) -> None:
    """In a folder whose `.env` points at a live SMTP server and whose digestbot.db has a real
    subscriber, the demo mails nobody, leaves that database byte for byte as it was and keeps
    its own database and outbox in ./digestbot-demo/, run after run."""
    engine = make_engine("sqlite:///digestbot.db")
    prepare(engine, NOW, count=1)
    engine.dispose()
    before = db_fingerprint(tmp_path / "digestbot.db")
    (tmp_path / ".env").write_text(
        "DIGESTBOT_DATABASE_URL=sqlite:///digestbot.db\n"
        "DIGESTBOT_SMTP_HOST=127.0.0.1\n"
        f"DIGESTBOT_SMTP_PORT={smtp_server.port}\n"
        "DIGESTBOT_SMTP_TLS=none\n"
        f"DIGESTBOT_FROM_ADDRESS={SENDER}\n",
        encoding="utf-8",
    )
    env = host_environment()
    env.update(DIGESTBOT_OUTBOX_DIR=str(tmp_path / "outbox"), DIGESTBOT_TRANSPORT="smtp")
    command = [sys.executable, "-m", "digestbot", "demo"]
    for _ in range(2):
        done = subprocess.run(
            command, cwd=tmp_path, env=env, capture_output=True, text=True, check=False
        )
        assert done.returncode == 0, done.stderr
        assert "./digestbot-demo/" in done.stdout
    assert smtp_server.inbox.envelopes == []
    assert db_fingerprint(tmp_path / "digestbot.db") == before
    assert not (tmp_path / "outbox").exists()
    assert (tmp_path / "digestbot-demo" / "digestbot.db").is_file()
    # Three digests, then Bob's papers that did not fit his max_papers of 3.
    assert len(list((tmp_path / "digestbot-demo" / "outbox").glob("*.eml"))) == 4
