"""CLI: thin typer commands over the library; the only place that prints errors."""

from digestbot.cli import (  # noqa: F401  (importing them registers their commands)
    database,
    enriching,
    library,
    mail,
    paperview,
    readers,
    serve,
    setup,
    workview,
)
from digestbot.cli.common import app
from digestbot.cli.entry import main

__all__ = ["app", "main"]
