"""Tests for the command line when the database or the machine fails: one `Error:` line, exit 1,
the database as it was."""

from __future__ import annotations

import resource
import signal
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from contextlib import closing
from pathlib import Path

import pytest
from conftest import LISTING_000, db_fingerprint, free_port
from helpers import NOW, host_environment, prepare

from digestbot.settings import Settings
from digestbot.store.engine import make_engine

Limit = Callable[[], None] | None


def digestbot(
    url: str, *args: str, limit: Limit = None, **env: str
) -> subprocess.CompletedProcess[str]:
    """`python -m digestbot ARGS` on the database at `url`, in a process of its own (`limit`
    runs in it first)."""
    clean = host_environment()
    clean.update(DIGESTBOT_DATABASE_URL=url, DIGESTBOT_TRANSPORT="file", **env)
    command = [sys.executable, "-m", "digestbot", *args]
    return subprocess.run(
        command, env=clean, capture_output=True, text=True, timeout=120, preexec_fn=limit
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single `Error:` line `result` printed, after checking it exited 1 without a traceback."""
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: "), result.stderr
    return lines[0]


@pytest.fixture
def database(settings: Settings) -> Path:
    """The SQLite file of `settings`, holding papers and three subscribers."""
    engine = make_engine(settings.database_url)
    prepare(engine, NOW)
    engine.dispose()
    return Path(settings.database_url.removeprefix("sqlite:///"))


@pytest.fixture
def newcomer(tmp_path: Path) -> Path:
    """A subscriptions file whose sync has something to write: a subscriber `database` lacks."""
    path = tmp_path / "newcomer.yaml"
    path.write_text("subscribers:\n  - email: new@mylab.org\n    rules:\n      - any: [x]\n")
    return path


def test_it_reports_a_locked_database_in_one_line(
    settings: Settings, database: Path, newcomer: Path
) -> None:
    """A write lock held by another process past DIGESTBOT_DB_BUSY_TIMEOUT is one line naming
    the database and what to do, and nothing is written."""
    before = db_fingerprint(database)
    with closing(sqlite3.connect(database, isolation_level=None)) as holder:
        holder.execute("BEGIN IMMEDIATE")
        result = digestbot(
            settings.database_url,
            "subscriptions",
            "sync",
            str(newcomer),
            DIGESTBOT_DB_BUSY_TIMEOUT="0.5",
        )
        holder.execute("ROLLBACK")
    line = one_error_line(result)
    assert f"the database {settings.database_url} is locked" in line
    assert "0.5 s" in line and "DIGESTBOT_DB_BUSY_TIMEOUT" in line
    assert db_fingerprint(database) == before


def _file_size_limit(size: int) -> Limit:
    def limit() -> None:
        # Past the limit the kernel sends SIGXFSZ, which kills; ignored, the write fails with
        # EFBIG, as a full disk's write fails with ENOSPC.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (size, size))

    return limit


def test_it_reports_a_full_disk_in_one_line(settings: Settings, tmp_path: Path) -> None:
    """A write the disk (here the file size limit) refuses is one line saying so, and the
    database keeps what it had."""
    engine = make_engine(settings.database_url)
    engine.dispose()
    database = tmp_path / "digestbot.db"
    before = db_fingerprint(database)
    result = digestbot(
        settings.database_url, "ingest", str(LISTING_000), limit=_file_size_limit(64 * 1024)
    )
    line = one_error_line(result)
    assert settings.database_url in line and "disk" in line and "free some space" in line
    assert db_fingerprint(database) == before


def test_it_reports_a_read_only_database_in_one_line(database: Path, newcomer: Path) -> None:
    """A database opened read-only refuses the first write: one line saying it is read-only
    and how to fix it."""
    before = db_fingerprint(database)
    url = f"sqlite:///file:{database}?mode=ro&uri=true"
    result = digestbot(url, "subscriptions", "sync", str(newcomer))
    line = one_error_line(result)
    assert "is read-only: attempt to write a readonly database" in line
    assert "writable" in line
    assert db_fingerprint(database) == before


def _corrupt(database: Path) -> bytes:
    """Overwrite the root page of the papers table in `database` (checkpointed first), so
    whatever reads papers meets it, wherever the schema puts that page; its new bytes."""
    with closing(sqlite3.connect(database)) as conn:
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        (root,) = conn.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = 'papers'"
        ).fetchone()
        (size,) = conn.execute("PRAGMA page_size").fetchone()
    data = bytearray(database.read_bytes())
    start = (root - 1) * size
    data[start : start + size] = b"\xff" * size
    database.write_bytes(bytes(data))
    return bytes(data)


def test_a_corrupt_database_is_one_line_and_status_fails(
    settings: Settings, database: Path
) -> None:
    """Damaged pages are one line saying the database is corrupt, for a command reading them
    and for `status` (which checks them), and the file is left as it was."""
    damaged = _corrupt(database)
    listed = one_error_line(digestbot(settings.database_url, "papers", "list"))
    shown = one_error_line(digestbot(settings.database_url, "status"))
    for line in (listed, shown):
        assert f"the database {settings.database_url} is corrupt" in line
        assert "backup" in line
    assert database.read_bytes() == damaged


def _address_space_limit(size: int) -> Limit:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (size, size))

    return limit


def test_running_out_of_memory_is_one_line(
    settings: Settings, database: Path, tmp_path: Path
) -> None:
    """A command that runs out of memory (here reading a listing bigger than the address space
    allowed, the document size limit raised past it) says so in one line, with what to do,
    and writes nothing."""
    huge = tmp_path / "huge.txt"
    with huge.open("wb") as f:
        f.truncate(8 * 1024**3)  # sparse: no disk used
    before = db_fingerprint(database)
    result = digestbot(
        settings.database_url,
        "ingest",
        str(huge),
        limit=_address_space_limit(2 * 1024**3),
        DIGESTBOT_MAX_DOCUMENT_MB="100000",
    )
    line = one_error_line(result)
    assert line.startswith("Error: out of memory while running `digestbot ingest`")
    assert "more memory" in line
    assert db_fingerprint(database) == before


def test_a_database_password_is_never_printed() -> None:
    """A PostgreSQL URL's password is shown as *** in the error line of a database that
    cannot be reached."""
    url = f"postgresql://digestbot:s3cret-pw@127.0.0.1:{free_port()}/digestbot"
    result = digestbot(url, "status")
    line = one_error_line(result)
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "digestbot:***@127.0.0.1" in line and "cannot reach the database" in line


def test_a_database_password_is_hidden_in_a_url_that_does_not_parse() -> None:
    """A URL SQLAlchemy cannot use still has its password shown as ***."""
    result = digestbot("postgresql://digestbot:s3cret-pw@127.0.0.1:port/digestbot", "status")
    line = one_error_line(result)
    assert "s3cret-pw" not in result.stderr + result.stdout
    assert "digestbot:***@127.0.0.1" in line
