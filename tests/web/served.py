"""Helpers of the web tests: the site served by a real uvicorn on loopback, and the
settings that point readers' links at it."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from email.message import EmailMessage

from pydantic import SecretStr
from sqlalchemy import Engine

from digestbot.settings import Settings
from digestbot.web import create_app
from digestbot.web.server import listen, make_server

KEY = "a-test-key-long-enough-to-sign-links"
ONE_CLICK = {"Content-Type": "application/x-www-form-urlencoded"}


@dataclass(frozen=True)
class Site:
    """A running site: its base URL, and the settings whose links point at it."""

    url: str
    settings: Settings


@contextmanager
def serving(settings: Settings, engine: Engine, *, clock: datetime | None = None) -> Iterator[Site]:
    """The app, built from `settings` pointed at it, served by uvicorn on a free port of
    127.0.0.1 in a thread of its own until the block ends."""
    sock = listen("127.0.0.1", 0)
    url = f"http://127.0.0.1:{sock.getsockname()[1]}"
    pointed = settings.model_copy(update={"public_url": url, "secret_key": SecretStr(KEY)})
    app = (
        create_app(pointed, engine)
        if clock is None
        else create_app(pointed, engine, clock=lambda: clock)
    )
    server = make_server(app)
    thread = threading.Thread(target=lambda: asyncio.run(server.serve(sockets=[sock])))
    thread.start()
    try:
        for _ in range(200):
            if server.started:
                break
            thread.join(0.05)
        assert server.started, "uvicorn did not start"
        yield Site(url, pointed)
    finally:
        server.should_exit = True
        thread.join(10)
        sock.close()


def unsubscribe_link(message: EmailMessage) -> str:
    """The https?:// target of a message's List-Unsubscribe header (the other is a mailto)."""
    header = str(message["List-Unsubscribe"])
    targets = [part.strip().strip("<>") for part in header.split(",")]
    (link,) = [t for t in targets if t.startswith("http")]
    return link
