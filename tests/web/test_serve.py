"""Tests for `digestbot serve` and `digestbot run --serve` as real processes: they start,
answer on loopback, stop on SIGTERM, and refuse to start without DIGESTBOT_PUBLIC_URL."""

from __future__ import annotations

import signal
import socket
import subprocess
from pathlib import Path

import httpx
from conftest import free_port
from helpers import cli, wait_for
from served import KEY
from sqlalchemy import Engine

from digestbot.settings import Settings

UNREACHABLE = "http://127.0.0.1:9"  # discard port: nothing answers, no request leaves the host


def linked(port: int) -> dict[str, str]:
    """The environment of a site on `port`, its listing sources pointed at nothing."""
    return {
        "DIGESTBOT_PUBLIC_URL": f"http://127.0.0.1:{port}",
        "DIGESTBOT_SECRET_KEY": KEY,
        "DIGESTBOT_HF_BASE_URL": UNREACHABLE,
        "DIGESTBOT_ARXIV_RSS_BASE_URL": UNREACHABLE,
        "DIGESTBOT_ARXIV_API_BASE_URL": UNREACHABLE,
        "DIGESTBOT_HTTP_RETRIES": "0",
    }


def health(port: int) -> dict[str, str] | None:
    try:
        answer = httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2)
    except httpx.TransportError:
        return None
    return dict(answer.json()) if answer.status_code == 200 else None


def stopped(process: subprocess.Popen[str]) -> tuple[int, str]:
    """Send SIGTERM; its exit status and what it logged."""
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=30)
    return process.returncode, err


def test_serve_answers_healthz_and_stops_on_sigterm(engine: Engine, settings: Settings) -> None:
    """`digestbot serve --port P` answers /healthz on 127.0.0.1:P and exits 0 on SIGTERM,
    logging no reader's link."""
    port = free_port()
    process = cli(settings, free_port(), "serve", "--port", str(port), extra=linked(port))
    try:
        assert wait_for(lambda: health(port) is not None, 30), process.stderr
        assert health(port) == {"database": "ok", "daemon": "not running"}
        httpx.get(f"http://127.0.0.1:{port}/u/not-a-token")
    finally:
        status, logged = stopped(process)
    assert status == 0, logged
    assert "not-a-token" not in logged and "Traceback" not in logged


def test_serve_refuses_to_start_without_a_public_url(engine: Engine, settings: Settings) -> None:
    """Without DIGESTBOT_PUBLIC_URL it exits 1 with one Error line naming both settings."""
    process = cli(settings, free_port(), "serve", "--port", str(free_port()))
    _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    (line,) = err.strip().splitlines()
    assert line.startswith("Error: DIGESTBOT_PUBLIC_URL is not set")
    assert "DIGESTBOT_SECRET_KEY" in line


def test_serve_on_a_port_in_use_is_one_error_line(engine: Engine, settings: Settings) -> None:
    """A port another program listens on is an `Error: cannot listen on …` line, exit 1."""
    with socket.create_server(("127.0.0.1", 0)) as taken:
        port = taken.getsockname()[1]
        process = cli(settings, free_port(), "serve", "--port", str(port), extra=linked(port))
        _, err = process.communicate(timeout=60)
    assert process.returncode == 1
    (line,) = err.strip().splitlines()
    assert line.startswith(f"Error: cannot listen on 127.0.0.1:{port}: ")


def test_run_serve_runs_the_daemon_and_the_site_in_one_process(
    engine: Engine, settings: Settings, tmp_path: Path
) -> None:
    """`digestbot run --serve` answers /healthz with the daemon running, and SIGTERM stops
    both: exit 0, the daemon's lease released."""
    (tmp_path / "subscriptions.yaml").write_text(
        'subscribers:\n  - email: bob@example.org\n    send_at: "23:59"\n'
        "    rules:\n      - any: [diffusion]\n"
    )
    port = free_port()
    process = cli(settings, free_port(), "run", "--serve", "--port", str(port), extra=linked(port))
    try:
        assert wait_for(lambda: (health(port) or {}).get("daemon") == "running", 30)
    finally:
        status, logged = stopped(process)
    assert status == 0, logged
    assert "stopped" in logged and "Traceback" not in logged
    assert health(port) is None
