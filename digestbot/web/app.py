"""Web stage: the app `digestbot serve` runs, built by `create_app` at startup."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import UTC, datetime
from http import HTTPStatus

from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digestbot.settings import Settings
from digestbot.web import ops
from digestbot.web.limits import BODY_LIMIT, BodyLimit
from digestbot.web.links import Links
from digestbot.web.pages import Pages

log = logging.getLogger("digestbot.serve")


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

    def too_large() -> Response:
        return pages.error(413)

    routes = [
        Route("/", home),
        *Links(settings, engine, pages, clock).routes(),
        *ops.routes(engine, clock),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(BodyLimit, limit=BODY_LIMIT, too_large=too_large)],
        exception_handlers={HTTPException: http_error, Exception: failure},
    )
