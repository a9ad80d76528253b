"""Tests for `digestbot feedback import FILE`: the export format read back, checked whole
before anything is stored, where the latest vote on a paper wins."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from conftest import db_fingerprint
from helpers import prepare
from sqlalchemy import Engine
from sqlmodel import Session, col, select
from typer.testing import CliRunner, Result

from digestbot.cli import app
from digestbot.rules import readers
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.tables import PaperRow

HEADER = "email,paper_id,title,vote,voted_at,digest\n"


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch, engine: Engine):  # type: ignore[no-untyped-def]
    """The CLI on the test database (made, with its tables, by the `engine` fixture)."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", settings.database_url)

    def invoke(*args: str, stdin: str | None = None) -> Result:
        return CliRunner().invoke(app, list(args), input=stdin, catch_exceptions=False)

    return invoke


def _papers(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.exec(select(PaperRow.id).order_by(col(PaperRow.id))))


def _ids(engine: Engine) -> dict[str, int]:
    return {s.email: s.id for s in active_subscribers(engine)}


def _csv(*rows: tuple[str, str, str, str, str]) -> str:
    """A CSV file in the export format; each row is (email, paper, vote, time, digest)."""
    lines = [f"{e},{p},A title,{v},{t},{d}\n" for e, p, v, t, d in rows]
    return HEADER + "".join(lines)


def test_it_imports_a_csv_export_keeping_each_rows_time_and_digest(
    run, engine: Engine, clock: datetime, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """Each CSV row becomes a vote of that reader on that paper, with the file's time and
    digest, and the command says how many were new."""
    prepare(engine, clock, count=2)
    papers = _papers(engine)
    earlier = clock - timedelta(days=3)
    file = tmp_path / "votes.csv"
    file.write_text(
        _csv(
            (" reader0@Example.ORG", papers[0], "up", earlier.isoformat(), "2026-11-21"),
            ("reader1@example.org", papers[1], "down", "2026-11-22T08:00:00Z", "2026-11-22"),
        )
    )
    result = run("feedback", "import", str(file))
    assert result.exit_code == 0, result.output
    assert result.stdout == (
        "Imported 2 votes: 2 new, 0 replaced, 0 older than the stored vote (kept the stored one).\n"
    )
    stored = [(v.email, v.paper_id, v.vote, v.voted_at, v.digest) for v in readers.votes(engine)]
    assert stored == [
        ("reader0@example.org", papers[0], "up", earlier, "2026-11-21"),
        (
            "reader1@example.org",
            papers[1],
            "down",
            datetime(2026, 11, 22, 8, tzinfo=UTC),
            "2026-11-22",
        ),
    ]


def test_it_reads_a_json_export_from_stdin(run, engine: Engine, clock: datetime) -> None:  # type: ignore[no-untyped-def]
    """`-` reads stdin, and a JSON list of export objects is told from CSV by its content."""
    prepare(engine, clock, count=1)
    paper = _papers(engine)[0]
    row = {"email": "reader0@example.org", "paper_id": paper, "title": "t", "vote": "down"}
    row |= {"voted_at": clock.isoformat(), "digest": "2026-11-24"}
    result = run("feedback", "import", "-", stdin=json.dumps([row]))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("Imported 1 vote: 1 new,")
    (vote,) = readers.votes(engine)
    assert (vote.paper_id, vote.vote, vote.voted_at, vote.digest) == (
        paper,
        "down",
        clock,
        "2026-11-24",
    )


def test_a_paper_is_found_by_its_arxiv_id_when_its_id_differs(
    run, engine: Engine, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """A row naming a paper by arXiv id counts for the stored paper with that arXiv id."""
    prepare(engine, clock, count=1)
    paper = _papers(engine)[0]
    with Session(engine) as session, session.begin():
        row = session.get(PaperRow, paper)
        assert row is not None
        row.arxiv_id = "2401.00001"
    text = _csv(("reader0@example.org", "2401.00001", "up", clock.isoformat(), "d"))
    assert run("feedback", "import", "-", stdin=text).exit_code == 0
    assert [v.paper_id for v in readers.votes(engine)] == [paper]


def test_bad_rows_are_all_named_and_nothing_is_stored(
    run, engine: Engine, clock: datetime, settings: Settings
) -> None:  # type: ignore[no-untyped-def]
    """An unknown reader, an unknown paper, a bad vote and a time without a timezone are
    each an `Error: FILE:ROW:` line, exit 1, and the database is exactly as it was."""
    prepare(engine, clock, count=1)
    paper = _papers(engine)[0]
    readers.record_vote(
        engine, _ids(engine)["reader0@example.org"], paper, "up", digest="d", now=clock
    )
    good = clock.isoformat()
    text = _csv(
        ("reader0@example.org", paper, "down", (clock + timedelta(hours=1)).isoformat(), "d"),
        ("stranger@example.org", paper, "up", good, "d"),
        ("reader0@example.org", "no-such-paper", "up", good, "d"),
        ("reader0@example.org", paper, "sideways", good, "d"),
        ("reader0@example.org", paper, "up", "2026-11-24T07:00:00", "d"),
        ("reader0@example.org", paper, "up", "yesterday", "d"),
    )
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    before = db_fingerprint(path)
    result = run("feedback", "import", "-", stdin=text)
    assert result.exit_code == 1
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[:5] == [
        "Error: <stdin>:3: no subscriber has the address 'stranger@example.org'",
        "Error: <stdin>:4: no stored paper has the id 'no-such-paper'",
        "Error: <stdin>:5: vote is 'sideways', not up or down",
        "Error: <stdin>:6: voted_at '2026-11-24T07:00:00' has no timezone (add +00:00 or Z)",
        "Error: <stdin>:7: voted_at is 'yesterday', not an ISO 8601 time",
    ]
    assert lines[5].startswith("Error: nothing was imported")
    assert db_fingerprint(path) == before


def test_more_than_twenty_bad_rows_show_twenty_and_say_how_many_more(
    run, engine: Engine, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """25 bad rows: the first 20 are named, then `… 5 more`."""
    prepare(engine, clock, count=1)
    paper = _papers(engine)[0]
    text = _csv(*[("reader0@example.org", paper, "meh", clock.isoformat(), "d")] * 25)
    lines = run("feedback", "import", "-", stdin=text).stderr.splitlines()
    assert len(lines) == 22
    assert lines[19].startswith("Error: <stdin>:21: vote is 'meh'")
    assert lines[20] == "Error: … 5 more"


def test_a_file_without_the_export_header_is_refused(run, engine: Engine, clock: datetime) -> None:  # type: ignore[no-untyped-def]
    """A CSV whose header lacks the export's columns is an error naming what is missing."""
    result = run("feedback", "import", "-", stdin="email,vote\nreader0@example.org,up\n")
    assert result.exit_code == 1
    assert "<stdin>:1: the header lacks paper_id, title, voted_at, digest" in result.stderr


def test_an_older_vote_keeps_the_stored_one_and_a_newer_replaces_it(
    run, engine: Engine, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """The latest vote wins: a row older than the stored vote is counted and skipped, a
    newer one replaces it, and importing the same rows again changes nothing."""
    prepare(engine, clock, count=2)
    papers = _papers(engine)
    ids = _ids(engine)
    for email, paper in (("reader0@example.org", papers[0]), ("reader1@example.org", papers[1])):
        readers.record_vote(engine, ids[email], paper, "up", digest="web", now=clock)
    text = _csv(
        ("reader0@example.org", papers[0], "down", (clock - timedelta(days=1)).isoformat(), "f"),
        ("reader1@example.org", papers[1], "down", (clock + timedelta(days=1)).isoformat(), "f"),
        ("reader1@example.org", papers[2], "down", clock.isoformat(), "f"),
    )
    result = run("feedback", "import", "-", stdin=text)
    assert result.stdout == (
        "Imported 3 votes: 1 new, 1 replaced, 1 older than the stored vote (kept the stored one).\n"
    )
    stored = {(v.email, v.paper_id): (v.vote, v.digest) for v in readers.votes(engine)}
    assert stored[("reader0@example.org", papers[0])] == ("up", "web")
    assert stored[("reader1@example.org", papers[1])] == ("down", "f")
    again = run("feedback", "import", "-", stdin=text).stdout
    assert again.startswith("Imported 3 votes: 0 new, 0 replaced, 1 older")
    assert again.endswith(", 2 already stored.\n")


@pytest.mark.parametrize("as_json", [False, True])
def test_an_export_imported_into_a_fresh_database_exports_the_same_rows(
    run,
    engine: Engine,
    clock: datetime,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    as_json: bool,
) -> None:  # type: ignore[no-untyped-def]
    """Export, import into another database with the same subscribers and papers, export
    again: the same text, in CSV and in JSON."""
    prepare(engine, clock, count=3)
    papers, ids = _papers(engine), _ids(engine)
    for n, email in enumerate(sorted(ids)):
        for k, paper in enumerate(papers[:3]):
            at = clock + timedelta(minutes=7 * n + k, microseconds=n)
            vote = "up" if (n + k) % 2 else "down"
            readers.record_vote(engine, ids[email], paper, vote, digest=f"2026-11-{20 + n}", now=at)
    flag = ["--json"] if as_json else []
    exported = run("feedback", "export", *flag).stdout
    fresh = make_engine(f"sqlite:///{tmp_path / 'fresh.db'}")
    prepare(fresh, clock, count=3)
    fresh.dispose()
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'fresh.db'}")
    assert run("feedback", "import", "-", stdin=exported).stdout.startswith(
        "Imported 9 votes: 9 new"
    )
    assert run("feedback", "export", *flag).stdout == exported
    if not as_json:
        assert len(list(csv.reader(io.StringIO(exported)))) == 10
