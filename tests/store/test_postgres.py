"""The outbox on a real PostgreSQL server: claims use SELECT … FOR UPDATE SKIP LOCKED."""

from __future__ import annotations

import socket
from datetime import UTC, datetime, timedelta

import psycopg
from conftest import Postgres, SmtpServer, smtp_at
from helpers import cli, prepare, queued, race, rows
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot import service
from digestbot.delivery import claims, outbox
from digestbot.delivery.send import deliver
from digestbot.settings import Settings
from digestbot.store.tables import DeliveryRow, SentPaperRow


def test_it_runs_on_postgresql_with_the_tables_of_our_db_module(pg_engine: Engine) -> None:
    """make_engine on a postgresql:// URL talks to PostgreSQL through psycopg 3."""
    assert (pg_engine.dialect.name, pg_engine.dialect.driver) == ("postgresql", "psycopg")
    assert outbox.counts_by_status(pg_engine) == {}


def test_it_lets_each_row_be_claimed_by_only_one_of_two_concurrent_claimers(
    pg_engine: Engine, pg_settings: Settings, clock: datetime
) -> None:
    """Two claimers with their own connections race over every row; each row goes once."""
    ids = queued(pg_engine, pg_settings, clock, count=12)
    won = race(pg_settings.database_url, ids, clock)
    assert sorted(won[0] + won[1]) == sorted(ids)
    assert {(r.status, r.attempts) for r in rows(pg_engine)} == {("sending", 1)}


def test_it_skips_a_row_another_transaction_has_locked_instead_of_waiting(
    pg_engine: Engine, pg_settings: Settings, postgres_cluster: Postgres, clock: datetime
) -> None:
    """While another claimer holds the row's lock the claim returns at once with nothing;
    once that transaction ends without claiming, the row can be claimed."""
    (row_id,) = queued(pg_engine, pg_settings, clock, count=1)
    url = pg_settings.database_url
    with psycopg.connect(url, autocommit=False) as other:
        other.execute("SELECT id FROM deliveries WHERE id = %s FOR UPDATE", (row_id,))
        assert claims.claim(pg_engine, row_id, now=clock, by="me") is None
        other.rollback()
    claimed = claims.claim(pg_engine, row_id, now=clock, by="me")
    assert claimed is not None and claimed.attempts == 0
    assert claims.claim(pg_engine, row_id, now=clock, by="again") is None


async def test_it_records_the_papers_of_a_sent_digest_in_the_same_step(
    pg_engine: Engine, pg_settings: Settings, smtp_server: SmtpServer, clock: datetime
) -> None:
    """send-now on PostgreSQL: each digest is sent once, its papers are recorded as sent, and
    a second run has nothing new."""
    target = smtp_at(pg_settings, smtp_server.port)
    prepare(pg_engine, clock, count=3)
    outcomes, report = await service.send_now(pg_engine, target, now=clock)
    assert report.count("sent") == 3 and len(smtp_server.inbox.envelopes) == 3
    with Session(pg_engine) as session:
        sent = session.exec(select(SentPaperRow)).all()
        delivered = session.exec(select(DeliveryRow)).all()
    assert {row.status for row in delivered} == {"sent"}
    assert sum(o.papers for o in outcomes) == len(sent) > 0
    assert {p.delivery_id for p in sent} == {row.id for row in delivered}
    again, _ = await service.send_now(pg_engine, target, now=clock + timedelta(hours=1))
    assert {o.status for o in again} == {"nothing new"}


async def test_it_turns_a_row_left_sending_by_a_dead_process_into_unknown(
    pg_engine: Engine, pg_settings: Settings, clock: datetime
) -> None:
    """A claim by a process that no longer exists is recovered as unknown, never resent."""
    (row_id,) = queued(pg_engine, pg_settings, clock, count=1)
    assert claims.claim(pg_engine, row_id, now=clock, by=f"{socket.gethostname()}:999999")
    report = await deliver(pg_engine, pg_settings, now=clock)
    assert report.recovered == 1 and report.results == []
    (row,) = rows(pg_engine)
    assert row.status == "unknown" and "interrupted" in (row.last_error or "")


def test_it_sends_each_digest_once_when_two_processes_send_at_once(
    pg_engine: Engine, pg_settings: Settings, smtp_server: SmtpServer
) -> None:
    """Two send-now processes on one PostgreSQL outbox deliver every digest exactly once."""
    now = datetime.now(UTC)
    prepare(pg_engine, now, count=8)
    runs = [cli(pg_settings, smtp_server.port, "send-now") for _ in range(2)]
    for run in runs:
        _, errors = run.communicate(timeout=60)
        assert run.returncode == 0, errors
    recipients = sorted(m["To"] for m in smtp_server.inbox.messages)
    assert recipients == sorted(f"reader{n}@example.org" for n in range(8))
    assert {r.status for r in rows(pg_engine)} == {"sent"}


def test_it_marks_a_claimed_row_sent_together_with_its_papers(
    pg_engine: Engine, pg_settings: Settings, clock: datetime
) -> None:
    """mark_sent closes the row and records each of its papers as sent to that subscriber."""
    (row_id,) = queued(pg_engine, pg_settings, clock, count=1)
    claimed = claims.claim(pg_engine, row_id, now=clock, by="me")
    assert claimed is not None and claimed.paper_count > 0
    claims.mark_sent(pg_engine, row_id, where="smtp://test", now=clock)
    (row,) = rows(pg_engine)
    with Session(pg_engine) as session:
        papers = session.exec(select(SentPaperRow)).all()
    assert (row.status, row.delivered_to, row.sent_at) == ("sent", "smtp://test", clock)
    assert len(papers) == claimed.paper_count
    assert {(p.subscriber_id, p.delivery_id) for p in papers} == {(claimed.subscriber_id, row_id)}
