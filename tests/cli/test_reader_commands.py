"""Tests for the operator's commands over readers: unsubscribe, resubscribe, the warnings of
`subscriptions validate`/`sync` about addresses that left, `feedback export` and `status`."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import free_port, smtp_at
from helpers import prepare, rows, subscribers
from sqlalchemy import Engine
from sqlmodel import Session
from typer.testing import CliRunner, Result

from digestbot import service
from digestbot.cli import app
from digestbot.delivery.transport import TransportUnavailable
from digestbot.rules import readers
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings
from digestbot.store.tables import PaperRow


@pytest.fixture
def run(settings: Settings, monkeypatch: pytest.MonkeyPatch, engine: Engine):  # type: ignore[no-untyped-def]
    """The CLI on the test database (made, with its tables, by the `engine` fixture)."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", settings.database_url)

    def invoke(*args: str) -> Result:
        return CliRunner().invoke(app, list(args), catch_exceptions=False)

    return invoke


def test_an_unsubscribed_reader_stays_out_through_sync_and_both_commands_warn(
    run, engine: Engine, settings: Settings, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """After `unsubscribe`, a sync of the file that still lists the reader keeps them
    inactive and unplanned; `validate` and `sync` each print the warning line."""
    (tmp_path / "s.yaml").write_text(subscribers(2), encoding="utf-8")
    assert run("subscriptions", "sync", "s.yaml").exit_code == 0
    assert run("unsubscribe", "reader0@example.org").exit_code == 0
    synced = run("subscriptions", "sync", "s.yaml")
    assert synced.exit_code == 0
    today = datetime.now(UTC).date()  # the CLI's own clock
    warning = (
        f"Warning: reader0@example.org unsubscribed on {today} by the operator; remove them "
        "from the file or run digestbot resubscribe reader0@example.org\n"
    )
    assert synced.stderr.count("unsubscribed") == 1 and warning in synced.stderr
    assert synced.stdout.endswith("1 unchanged, 1 kept unsubscribed\n")
    validated = run("subscriptions", "validate", "s.yaml")
    assert validated.exit_code == 0
    assert validated.stderr.count("unsubscribed") == 1 and warning in validated.stderr
    planned = service.plan_digests(engine, settings, now=datetime.now(UTC))
    assert [d.subscriber.email for d in planned] == ["reader1@example.org"]


def test_validate_checks_a_file_before_any_database_exists(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With no database yet, `validate` checks the file alone and creates nothing."""
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{tmp_path / 'none.db'}")
    (tmp_path / "s.yaml").write_text(subscribers(1), encoding="utf-8")
    result = CliRunner().invoke(app, ["subscriptions", "validate", "s.yaml"])
    assert result.exit_code == 0 and "unsubscribed" not in result.stderr
    assert not (tmp_path / "none.db").exists()


def test_unsubscribe_cancels_queued_emails_says_how_many_and_is_harmless_twice(
    run, engine: Engine, settings: Settings, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """The reader's queued digest is cancelled and counted (the address's domain in any
    case); a second run says nothing changed and still exits 0."""
    prepare(engine, clock, count=2)
    with pytest.raises(TransportUnavailable):  # the server is down: the digests stay queued
        asyncio.run(service.send_now(engine, smtp_at(settings, free_port()), now=clock))
    first = run("unsubscribe", "reader0@EXAMPLE.org")
    assert (first.exit_code, first.stdout) == (
        0,
        "Unsubscribed reader0@example.org: on the suppression list, no more digests; "
        "1 queued email cancelled.\n",
    )
    again = run("unsubscribe", "reader0@example.org")
    assert (again.exit_code, again.stdout) == (
        0,
        "reader0@example.org was already unsubscribed; nothing changed.\n",
    )
    assert sorted(r.status for r in rows(engine)) == ["cancelled", "pending"]
    assert readers.suppressions(engine)["reader0@example.org"].via == "operator"


def test_unsubscribing_an_unknown_address_still_puts_it_on_the_list(
    run, engine: Engine, clock: datetime, tmp_path: Path
) -> None:  # type: ignore[no-untyped-def]
    """An address no file listed yet is suppressed all the same, and told so: a file that
    lists it later never makes it an active reader."""
    result = run("unsubscribe", "reader0@example.org")
    assert result.exit_code == 0
    assert "reader0@example.org is not a subscriber; it is on the suppression list" in (
        result.stdout
    )
    (tmp_path / "s.yaml").write_text(subscribers(1), encoding="utf-8")
    synced = run("subscriptions", "sync", "s.yaml")
    assert "Warning: reader0@example.org unsubscribed on" in synced.stderr
    assert active_subscribers(engine) == []


def test_resubscribe_brings_a_reader_back_and_fails_for_an_address_not_on_the_list(
    run, engine: Engine, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """resubscribe exits 0 and the reader is active again; for an address that was not
    suppressed it exits 1 with an Error line and changes nothing."""
    prepare(engine, clock, count=1)
    service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    back = run("resubscribe", "reader0@example.org")
    assert (back.exit_code, back.stdout) == (
        0,
        "Resubscribed reader0@example.org: off the suppression list.\n",
    )
    assert [s.email for s in active_subscribers(engine)] == ["reader0@example.org"]
    again = run("resubscribe", "reader0@example.org")
    assert again.exit_code == 1
    assert again.stderr == (
        "Error: reader0@example.org is not on the suppression list; nothing changed "
        "(check the spelling of the address)\n"
    )
    assert again.stdout == ""


def test_resubscribing_an_address_no_file_lists_says_how_to_add_it(
    run, engine: Engine, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """Off the list, an address that was never a subscriber still needs the file and a sync."""
    service.unsubscribe(engine, "new@example.org", now=clock, via="operator")
    result = run("resubscribe", "new@example.org")
    assert result.exit_code == 0
    assert "not a subscriber: add them to the subscriptions file" in result.stdout
    assert readers.suppressions(engine) == {}


@pytest.mark.parametrize("command", ["unsubscribe", "resubscribe"])
def test_a_malformed_address_is_an_error_and_changes_nothing(
    run, engine: Engine, command: str
) -> None:  # type: ignore[no-untyped-def]
    """Not an email address: an Error line naming it, exit 1, the list untouched."""
    result = run(command, "not-an-address")
    assert result.exit_code == 1
    assert result.stderr.startswith("Error: 'not-an-address' is not a valid email address")
    assert readers.suppressions(engine) == {}


def test_feedback_export_writes_every_vote_as_csv_or_json(
    run, engine: Engine, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """Each vote is one CSV row under a header (titles quoted as CSV needs), or one JSON
    object with exactly the documented keys; only the latest vote on a paper counts."""
    prepare(engine, clock, count=2)
    items = _digest_items(engine, clock)[:2]
    papers, titles = [i.paper.id for i in items], [i.paper.title for i in items]
    titles[0] = 'Attention, "again"'  # a title CSV must quote
    with Session(engine) as session, session.begin():
        paper = session.get(PaperRow, papers[0])
        assert paper is not None
        paper.title = titles[0]
    ids = {s.email: s.id for s in active_subscribers(engine)}
    reader0, reader1 = ids["reader0@example.org"], ids["reader1@example.org"]
    readers.record_vote(engine, reader0, papers[0], "down", digest="2026-11-24", now=clock)
    later = clock.replace(hour=9)
    readers.record_vote(engine, reader0, papers[0], "up", digest="2026-11-24", now=later)
    readers.record_vote(engine, reader1, papers[1], "down", digest="2026-11-25", now=later)
    text = run("feedback", "export")
    assert text.exit_code == 0
    table = list(csv.reader(io.StringIO(text.stdout)))
    assert table[0] == ["email", "paper_id", "title", "vote", "voted_at", "digest"]
    assert table[1:] == [
        ["reader0@example.org", papers[0], titles[0], "up", later.isoformat(), "2026-11-24"],
        ["reader1@example.org", papers[1], titles[1], "down", later.isoformat(), "2026-11-25"],
    ]
    listed = json.loads(run("feedback", "export", "--json").stdout)
    assert [set(v) for v in listed] == [set(table[0])] * 2
    assert [[v[k] for k in table[0]] for v in listed] == table[1:]


def test_feedback_export_with_no_votes_prints_the_header_or_an_empty_list(run) -> None:  # type: ignore[no-untyped-def]
    """No votes yet: the CSV header alone, or `[]`."""
    assert run("feedback", "export").stdout == "email,paper_id,title,vote,voted_at,digest\n"
    assert json.loads(run("feedback", "export", "--json").stdout) == []


def test_status_counts_suppressed_addresses_and_cancelled_emails(
    run, engine: Engine, settings: Settings, clock: datetime
) -> None:  # type: ignore[no-untyped-def]
    """status shows how many addresses are suppressed, and cancelled emails in the outbox
    once there are any."""
    before = run("status").stdout
    assert "Suppression list: 0 addresses." in before and "cancelled" not in before
    prepare(engine, clock, count=1)
    with pytest.raises(TransportUnavailable):
        asyncio.run(service.send_now(engine, smtp_at(settings, free_port()), now=clock))
    service.unsubscribe(engine, "reader0@example.org", now=clock, via="link")
    service.unsubscribe(engine, "gone@example.org", now=clock, via="operator")
    shown = run("status").stdout
    assert "Suppression list: 2 addresses that unsubscribed; no mail goes to them" in shown
    assert any(line.split() == ["│", "cancelled", "│", "1", "│"] for line in shown.splitlines())


def _digest_items(engine: Engine, clock: datetime):  # type: ignore[no-untyped-def]
    """The papers of the fixture listing that the readers' rule matches."""
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    (digest, *_) = service.plan_digests(engine, settings, now=clock)
    return digest.items
