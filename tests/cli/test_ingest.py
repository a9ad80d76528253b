"""Tests for `digestbot ingest`: every source tried and recorded, errors that cannot heal,
retries said on a terminal, and the year of a saved page."""

from __future__ import annotations

import os
import re
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import FEEDS, LISTINGS, HttpServer, Reply
from helpers import host_environment, on_a_terminal
from sqlmodel import Session, select
from typer.testing import CliRunner, Result

from digestbot.cli import app
from digestbot.schedule import ledger
from digestbot.store.engine import make_engine
from digestbot.store.tables import PaperRow

SUBSCRIBER = "subscribers:\n  - email: alice@example.org\n    rules:\n      - any: [transformer]\n"


def run(*args: str) -> Result:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def point_at(monkeypatch: pytest.MonkeyPatch, server: HttpServer, retries: int = 0) -> None:
    """Every listing service at `server`, `retries` retries without waiting."""
    for name in ("HF", "ARXIV_RSS", "ARXIV_API"):
        monkeypatch.setenv(f"DIGESTBOT_{name}_BASE_URL", server.base_url)
    monkeypatch.setenv("DIGESTBOT_HTTP_RETRIES", str(retries))
    monkeypatch.setenv("DIGESTBOT_HTTP_BACKOFF", "0")


def test_ingest_all_tries_every_source_and_reports_each(
    tmp_path: Path, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A dead first source does not starve the others: each is reported, exit 1, and
    `status` shows every source's last ingest."""
    point_at(monkeypatch, http_server)
    dead = http_server.route("/dead.xml", Reply(503))
    http_server.route("/rss/cs.CL", Reply(body=(FEEDS / "arxiv_rss_cs.CL.xml").read_bytes()))
    http_server.route(
        "/api/daily_papers", Reply(body=(FEEDS / "hf_daily_papers_2025-01-15.json").read_bytes())
    )
    sources = f"sources:\n  - kind: feed\n    url: {dead}\n  - kind: hf\n"
    sources += "  - kind: arxiv\n    categories: [cs.CL]\n"
    (tmp_path / "subscriptions.yaml").write_text(sources + SUBSCRIBER)
    monkeypatch.setenv("DIGESTBOT_SUBSCRIPTIONS", str(tmp_path / "subscriptions.yaml"))
    result = run("ingest", "--all", "--date", "2025-01-15")
    assert result.exit_code == 1
    (error,) = result.stderr.strip().splitlines()
    assert error.startswith(f"Error: {dead}: HTTP 503")
    assert "6 new" in result.stdout and "3 new, 1 already known" in result.stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    recorded = ledger.source_runs(engine)
    engine.dispose()
    assert set(recorded) == {f"feed:{dead}", "hf", "arxiv:cs.CL"}
    assert recorded[f"feed:{dead}"].failures == 1 and "503" in (
        recorded[f"feed:{dead}"].error or ""
    )
    assert (recorded["hf"].new_papers, recorded["arxiv:cs.CL"].new_papers) == (6, 3)
    assert "arxiv:cs.CL" in run("status").stdout


def test_ingest_of_one_source_is_recorded_for_status(
    tmp_path: Path, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A manual `ingest URL` leaves the same record as the daemon's ingest of that source."""
    point_at(monkeypatch, http_server)
    url = http_server.route("/feed.xml", Reply(body=(FEEDS / "arxiv_rss_cs.CL.xml").read_bytes()))
    assert run("ingest", url).exit_code == 0
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    recorded = ledger.source_runs(engine)[f"feed:{url}"]
    engine.dispose()
    assert recorded.failures == 0 and recorded.new_papers == 4 and recorded.last_success_at


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["http://nonexistent.invalid/x"], "no such host: nonexistent.invalid"),
        (["ftp://127.0.0.1/x"], "fetches only http:// and https://"),
        (["--source", "feed", "ftp://127.0.0.1/x"], "fetches only http:// and https://"),
    ],
)
def test_an_error_waiting_cannot_heal_fails_at_once_in_one_line(
    monkeypatch: pytest.MonkeyPatch, args: list[str], says: str
) -> None:
    """No such host or a scheme other than HTTP is one `Error:` line, without the retries
    (3, from a backoff of 2 s) that a transient failure gets."""
    monkeypatch.setenv("DIGESTBOT_HTTP_RETRIES", "3")
    monkeypatch.setenv("DIGESTBOT_HTTP_BACKOFF", "2")
    start = time.monotonic()
    result = run("ingest", *args)
    assert time.monotonic() - start < 1.5
    assert result.exit_code == 1
    (line,) = result.stderr.strip().splitlines()
    assert line.startswith("Error: ") and says in line


def test_retries_are_said_on_a_terminal_and_not_in_a_pipe(
    tmp_path: Path, http_server: HttpServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A server answering 503 twice, then 200, gives two `retrying in … (n/3)` lines on a
    terminal; piped (a cron job), stderr stays empty."""
    body = (FEEDS / "arxiv_rss_cs.CL.xml").read_bytes()
    url = http_server.route("/feed.xml", Reply(503), Reply(503), Reply(body=body))
    env = host_environment()
    for name in ("CI", "NO_COLOR", "FORCE_COLOR", "TTY_COMPATIBLE", "TTY_INTERACTIVE"):
        env.pop(name, None)  # rich reads these; the test wants it to decide by the tty alone
    env.update(
        TERM="xterm-256color",
        COLUMNS="200",
        DIGESTBOT_DATABASE_URL=f"sqlite:///{tmp_path / 'digestbot.db'}",
        DIGESTBOT_HTTP_RETRIES="3",
        DIGESTBOT_HTTP_BACKOFF="0.01",
    )
    status, said = on_a_terminal(["ingest", url], env)
    assert status == 0, said
    lines = re.findall(r"retrying in [0-9.]+ s \((\d)/3\)", said)
    assert lines == ["1", "2"], said
    http_server.route("/feed.xml", Reply(503), Reply(body=body))
    point_at(monkeypatch, http_server, retries=3)
    piped = run("ingest", url)
    assert piped.exit_code == 0 and piped.stderr == ""


def saved_last_year(tmp_path: Path) -> tuple[Path, datetime]:
    """A copy of a saved page whose dates name no year, its header day a year ago, and
    its modification time set to that day."""
    saved = datetime.now(UTC).replace(hour=12) - timedelta(days=365)
    text = (LISTINGS / "001_da432fa98501e883.txt").read_text(encoding="utf-8")
    text = re.sub(r"^([A-Z][a-z]{2} \d{1,2}), \d{4}", r"\1", text, flags=re.MULTILINE)
    text = text.replace("\nNov 5\n", f"\n{saved:%b} {saved.day}\n", 1)
    path = tmp_path / "saved.txt"
    path.write_text(text, encoding="utf-8")
    os.utime(path, (saved.timestamp(), saved.timestamp()))
    return path, saved


def published(tmp_path: Path) -> list[datetime]:
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    with Session(engine) as session:
        dates = [p for p in session.exec(select(PaperRow.published)) if p is not None]
    engine.dispose()
    return dates  # type: ignore[return-value]


def test_a_page_saved_last_year_is_dated_by_its_modification_time(tmp_path: Path) -> None:
    """Its papers are dated no later than the day it was saved, and `ingest` says which
    year it assumed and why."""
    path, saved = saved_last_year(tmp_path)
    result = run("ingest", str(path))
    assert result.exit_code == 0
    assert (
        f"Note: {path}: the page gives no year; assumed {saved.year} (its day's latest date "
        f"not after the file's modification time ({saved.date()}), and later than any year "
        "its papers print); use --year to say otherwise"
    ) in " ".join(result.stderr.split())
    dates = published(tmp_path)
    assert dates and saved.date() - timedelta(days=40) < max(dates) <= saved.date()


def test_year_overrides_the_modification_time(tmp_path: Path) -> None:
    """`--year 2020` dates the page in 2020 and assumes nothing."""
    path, _ = saved_last_year(tmp_path)
    result = run("ingest", str(path), "--year", "2020")
    assert result.exit_code == 0 and "assumed" not in result.stderr
    assert max(published(tmp_path)).year == 2020
