"""CLI: `digestbot serve`, the site readers' links open (unsubscribe, votes), under uvicorn."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from digestbot.cli.common import app, friendly, load_settings, open_engine
from digestbot.cli.mail import start_logging
from digestbot.web import create_app
from digestbot.web.server import (
    exit_quietly_on_signals,
    listen,
    make_server,
    require_public_url,
)

Host = Annotated[
    str,
    typer.Option("--host", metavar="ADDRESS", help="Address to listen on (a reverse proxy's)."),
]
Port = Annotated[
    int, typer.Option("--port", metavar="PORT", min=1, max=65535, help="Port to listen on.")
]


@app.command(short_help="Serve the pages readers' links open: unsubscribe and votes.")
@friendly
def serve(host: Host = "127.0.0.1", port: Port = 8080) -> None:
    """Serve the pages readers' links open: one-click unsubscribe and votes on papers,
    with /healthz and /metrics for monitoring.

    Needs DIGESTBOT_PUBLIC_URL (where readers reach it, usually a reverse proxy that
    terminates TLS and forwards to --host/--port) and DIGESTBOT_SECRET_KEY.

    Stop it with SIGTERM or Ctrl-C; requests in flight finish.
    """
    settings = load_settings()
    require_public_url(settings)
    with open_engine(settings) as engine:
        start_logging(settings.log_level)
        sock = listen(host, port)
        with sock, exit_quietly_on_signals():
            server = make_server(create_app(settings, engine))
            asyncio.run(server.serve(sockets=[sock]))
