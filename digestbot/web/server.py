"""Web stage: serving the app with uvicorn, on a socket bound up front, stopped by a signal
or by its caller (the daemon, when both run in one process)."""

from __future__ import annotations

import asyncio
import logging
import signal
import socket
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn
from starlette.types import ASGIApp

from digestbot.errors import ConfigError
from digestbot.settings import Settings

SIGNALS = (signal.SIGTERM, signal.SIGINT)
log = logging.getLogger("digestbot.serve")


def require_public_url(settings: Settings) -> None:
    """Refuse to serve links that no email points at, or that nothing could sign."""
    if not settings.public_url:
        raise ConfigError(
            "DIGESTBOT_PUBLIC_URL is not set: readers' links would not point at this server",
            "set DIGESTBOT_PUBLIC_URL to the URL readers reach it at, and DIGESTBOT_SECRET_KEY"
            " to a long random string",
        )


def listen(host: str, port: int) -> socket.socket:
    """A socket listening on `host`:`port`, bound before anything starts so that a port in
    use is one clear error."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ConfigError(
            f"cannot listen on {host}:{port}: {exc.strerror or exc}",
            "stop what uses that port, or choose another with --host/--port",
        ) from None
    log.info("serving readers' links on %s:%d", host, sock.getsockname()[1])
    return sock


def make_server(app: ASGIApp) -> uvicorn.Server:
    """uvicorn's server for `app`. Access logs are off: every path holds a reader's token."""
    config = uvicorn.Config(
        app, log_config=None, access_log=False, lifespan="off", server_header=False
    )
    return uvicorn.Server(config)


@contextmanager
def exit_quietly_on_signals() -> Iterator[None]:
    """While `serve` runs alone: uvicorn stops on SIGTERM or SIGINT and then raises the
    signal again for whatever handled it before (its cooperative signal handling); handled
    here, the process then exits 0 instead of dying by the signal."""
    before = {sig: signal.signal(sig, _stopped) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, handler)


def _stopped(signum: int, frame: object) -> None:
    """The signal uvicorn passes on once it has stopped: nothing more to do."""


async def serve_while(
    work: Coroutine[Any, Any, None],
    server: uvicorn.Server,
    sock: socket.socket,
    stop: Callable[[], None],
) -> None:
    """Serve on `sock` while `work` (the daemon) runs; when it ends the server stops, and a
    server that ends first (a signal: uvicorn passes it on to the daemon's handler) calls
    `stop` so the process does not run on half alive."""
    web = asyncio.create_task(server.serve(sockets=[sock]))
    web.add_done_callback(lambda _: stop())
    try:
        await work
    finally:
        server.should_exit = True
        await web
