"""Tests for the CLI's conventions: --version, -h, readable help, usage errors, pipes."""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from pathlib import Path

import pytest
import typer
from conftest import LISTING_000
from helpers import cli
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.settings import Settings

# Type names as click and typer print them when a parameter has no metavar of its own.
PLACEHOLDER = re.compile(
    r"<[\w\[\]|,. -]+>|\b(TEXT|INTEGER|FLOAT|BOOLEAN|PATH|FILENAME|DATETIME|UUID)\b"
    r"|\[%Y"
)


def commands() -> Iterator[list[str]]:
    """The words that reach every group and command of the app, the app itself first."""

    def walk(command: typer.core.TyperGroup | typer.core.TyperCommand, path: list[str]):  # type: ignore[no-untyped-def]
        yield path
        for name, child in getattr(command, "commands", {}).items():
            yield from walk(child, [*path, name])

    yield from walk(typer.main.get_command(app), [])  # type: ignore[arg-type]


ALL = list(commands())


def test_the_walk_reaches_every_group_and_command() -> None:
    """The walk below is not vacuous: it reaches the groups and the nested commands."""
    assert ["papers", "list"] in ALL and ["db", "upgrade"] in ALL and ["init"] in ALL


@pytest.mark.parametrize("words", ALL, ids=lambda words: " ".join(words) or "digestbot")
def test_every_help_is_short_flagged_and_free_of_type_placeholders(words: list[str]) -> None:
    """`-h` prints the same help as `--help`, with no `<bool>`, `TEXT`-style placeholder."""
    runner = CliRunner()
    short = runner.invoke(app, [*words, "-h"], terminal_width=100)
    long = runner.invoke(app, [*words, "--help"], terminal_width=100)
    assert short.exit_code == 0 and long.exit_code == 0, short.output
    assert short.stdout == long.stdout
    # Environment variable names (DIGESTBOT_SMTP_HOST) are words people know, not types.
    text = re.sub(r"DIGESTBOT_\w+", "", short.stdout)
    assert not PLACEHOLDER.search(text), PLACEHOLDER.search(text)
