"""CLI: thin typer commands over the library; the only place that prints errors."""

from digestbot.cli import database, library, mail, paperview  # noqa: F401  (importing them registers their commands)
from digestbot.cli.common import app


def main() -> None:
    """Console entry point."""
    app()


__all__ = ["app", "main"]
