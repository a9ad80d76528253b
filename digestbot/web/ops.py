"""Web stage: what operators poll: `/healthz` (the database answers; is the daemon up) and
`/metrics` (Prometheus text), both read from the database at each request."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine, func
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from digestbot.delivery.outbox import counts_by_status
from digestbot.errors import DigestbotError
from digestbot.rules.readers import suppressed_count
from digestbot.schedule import ledger
from digestbot.store.engine import sql
from digestbot.store.lock import daemon_running
from digestbot.store.tables import STATES, VoteRow
from digestbot.tokens import VOTES

log = logging.getLogger("digestbot.serve")


def daemon_state(engine: Engine) -> str:
    """`running` or `not running`, as `digestbot status` tells it: the lease row first, so
    that no `run` is kept from starting by a health check that takes its lock to look."""
    if ledger.lease(engine) is None:
        return "not running"
    return "not running" if daemon_running(engine) is False else "running"


def health(engine: Engine) -> dict[str, str]:
    with engine.connect() as connection:
        connection.execute(sql("SELECT 1"))
    return {"database": "ok", "daemon": daemon_state(engine)}


class DigestbotCollector(Collector):
    """The metrics, read from the database when Prometheus scrapes."""

    def __init__(self, engine: Engine, clock: Callable[[], datetime]) -> None:
        self.engine, self.clock = engine, clock

    def collect(self) -> Iterator[Metric]:
        counts = counts_by_status(self.engine)
        deliveries = GaugeMetricFamily(
            "digestbot_deliveries", "Emails in the outbox, by state.", labels=["state"]
        )
        for state in STATES:
            deliveries.add_metric([state], counts.get(state, 0))
        yield deliveries
        yield CounterMetricFamily(
            "digestbot_emails_sent", "Emails the SMTP server accepted.", counts.get("sent", 0)
        )
        yield self._ingest_ages()
        yield GaugeMetricFamily(
            "digestbot_suppressed_addresses",
            "Addresses that unsubscribed (the suppression list).",
            suppressed_count(self.engine),
        )
        votes = GaugeMetricFamily(
            "digestbot_votes", "Readers' votes on papers (the latest of each).", labels=["vote"]
        )
        counted = _votes(self.engine)
        for vote in VOTES:
            votes.add_metric([vote], counted.get(vote, 0))
        yield votes

    def _ingest_ages(self) -> GaugeMetricFamily:
        ages = GaugeMetricFamily(
            "digestbot_source_last_success_age_seconds",
            "Seconds since each source's last successful ingest.",
            labels=["source"],
        )
        now = self.clock()
        for name, run in sorted(ledger.source_runs(self.engine).items()):
            if run.last_success_at is not None:
                ages.add_metric([name], (now - run.last_success_at).total_seconds())
        return ages


def _votes(engine: Engine) -> dict[str, int]:
    with Session(engine) as session:
        found = session.exec(select(VoteRow.vote, func.count()).group_by(col(VoteRow.vote)))
        return {vote: int(count) for vote, count in found}


def routes(engine: Engine, clock: Callable[[], datetime]) -> list[Route]:
    """`/healthz` and `/metrics`, the latter on a registry of this app's own."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(DigestbotCollector(engine, clock))

    async def healthz(request: Request) -> Response:
        try:
            return JSONResponse(await run_in_threadpool(health, engine))
        except (SQLAlchemyError, DigestbotError) as exc:
            log.warning("health check: the database does not answer: %s", exc)
            return JSONResponse({"database": "unavailable", "daemon": "unknown"}, 503)

    async def metrics(request: Request) -> Response:
        body = await run_in_threadpool(generate_latest, registry)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    return [Route("/healthz", healthz), Route("/metrics", metrics)]
