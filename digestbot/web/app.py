"""Web stage: the app `digestbot serve` runs, built by `create_app` at startup."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digestbot.settings import Settings
from digestbot.web import ops
from digestbot.web.links import Links
from digestbot.web.pages import Pages

log = logging.getLogger("digestbot.serve")

# A one-click unsubscribe body is 26 bytes and a vote a few more: anything big is not ours.
BODY_LIMIT = 4096


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings, engine: Engine, *, clock: Callable[[], datetime] = utc_now
) -> Starlette:
    """The site over `engine`: readers' links under /u/ and /v/, /healthz and /metrics.
    Every error is a page of its own; a failure is logged, never shown."""
    pages = Pages()

    async def home(request: Request) -> Response:
        return pages.page("home.html")

    async def http_error(request: Request, exc: Exception) -> Response:
        if not isinstance(exc, HTTPException):  # pragma: no cover - registered for it only
            raise exc
        # The router's own errors carry just the status phrase: the page says more.
        said = exc.detail if exc.detail != HTTPStatus(exc.status_code).phrase else None
        return pages.error(exc.status_code, said)

    async def failure(request: Request, exc: Exception) -> Response:
        log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
        return pages.error(500)

    routes = [
        Route("/", home),
        *Links(settings, engine, pages, clock).routes(),
        *ops.routes(engine, clock),
    ]
    return Starlette(
        routes=routes,
        # Starlette answers 413 to a body announced too long, and raises it (our page) when
        # one grows too long while a handler reads it, before the handler acts.
        max_body_size=BODY_LIMIT,
        exception_handlers={HTTPException: http_error, Exception: failure},
    )
