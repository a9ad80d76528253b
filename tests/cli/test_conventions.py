"""Tests for the CLI's conventions: --version, -h, readable help, usage errors, pipes."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections.abc import Iterator
from importlib.metadata import version
from typing import Any

import pytest
import typer
from conftest import LISTING_000
from helpers import cli, host_environment
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

    def walk(command: Any, path: list[str]) -> Iterator[list[str]]:
        yield path
        for name, child in getattr(command, "commands", {}).items():
            yield from walk(child, [*path, name])

    yield from walk(typer.main.get_command(app), [])


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


def test_every_usage_line_names_its_arguments_in_capitals() -> None:
    """Arguments read as TARGET, EMAIL or FILE in the usage line, not as Python names."""
    runner = CliRunner()
    for words in ALL:
        usage = runner.invoke(app, [*words, "-h"]).stdout.splitlines()[0]
        assert not re.search(r"[\[{][a-z_]+[\]}]", usage), usage


def test_version_prints_the_package_version() -> None:
    """`digestbot --version` prints `digestbot <version>` from the package metadata, exit 0."""
    result = CliRunner().invoke(app, ["--version"])
    assert result.exit_code == 0
    assert result.stdout == f"digestbot {version('digestbot')}\n"


def test_the_help_documents_the_exit_codes() -> None:
    """The app's help says what 0, 1 and 2 mean."""
    shown = " ".join(CliRunner().invoke(app, ["-h"], terminal_width=200).stdout.split())
    assert "Exit status: 0 done, 1 failed (an Error: line says why), 2 usage error." in shown


def test_a_bare_group_shows_its_help() -> None:
    """`digestbot` and `digestbot papers` alone print their help and exit 0."""
    for words in ([], ["papers"]):
        result = CliRunner().invoke(app, words)
        assert result.exit_code == 0
        assert result.stdout.startswith(f"Usage: root {' '.join(words)}".rstrip())


@pytest.mark.parametrize(
    ("args", "error", "helped"),
    [
        (["status", "--bogus"], "Error: no such option: --bogus", "digestbot status"),
        (["preview"], "Error: missing argument 'EMAIL'.", "digestbot preview"),
        (
            ["ingest", "--year", "soon", "x.txt"],
            "Error: invalid value for '--year': ",
            "digestbot ingest",
        ),
        (["sned-now"], "Error: no such command 'sned-now'.", "digestbot"),  # did you mean …
    ],
    ids=["unknown option", "missing argument", "bad value", "unknown command"],
)
def test_a_usage_error_is_one_error_line_and_exit_2(
    settings: Settings, args: list[str], error: str, helped: str
) -> None:
    """The real process prints `Error: …` and where help is, nothing else, and exits 2."""
    run = cli(settings, 0, *args)
    stdout, stderr = run.communicate(timeout=60)
    assert run.returncode == 2, stderr
    assert stdout == ""
    said, where = stderr.splitlines()
    assert said.startswith(error)
    assert where == f"Try '{helped} -h' for help."


def test_a_failure_while_running_stays_exit_1(settings: Settings) -> None:
    """An error from running (here: no database) is exit 1, told apart from usage errors."""
    run = cli(settings, 0, "status")
    _, stderr = run.communicate(timeout=60)
    assert run.returncode == 1
    assert stderr.startswith("Error: no database here")


def test_a_reader_that_leaves_early_ends_it_quietly(settings: Settings) -> None:
    """`digestbot papers list | true`: no traceback, no BrokenPipeError, and the status a
    shell reports for a program that SIGPIPE ended (128 + 13)."""
    ingested = cli(settings, 0, "ingest", str(LISTING_000))
    ingested.communicate(timeout=60)
    assert ingested.returncode == 0
    env = host_environment()
    env["DIGESTBOT_DATABASE_URL"] = settings.database_url
    for args in (["papers", "list"], ["status"], ["-h"]):
        reader, writer = os.pipe()
        os.close(reader)  # the reader has gone before the first write: every write fails
        try:
            closed = subprocess.run(
                [sys.executable, "-m", "digestbot", *args],
                env=env,
                stdout=writer,
                stderr=subprocess.PIPE,
                text=True,
                timeout=60,
            )
        finally:
            os.close(writer)
        assert closed.stderr == "", closed.stderr
        assert closed.returncode == 141, args
