"""CLI: thin typer commands over the library; the only place that prints errors."""

from digestbot.cli import database, library, mail, setup  # noqa: F401  (importing them registers their commands)
from digestbot.cli.common import app
from digestbot.cli.entry import main

__all__ = ["app", "main"]
