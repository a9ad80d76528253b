"""CLI entry: runs the command tree; usage errors as one line (exit 2), a closed pipe quietly."""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Sequence
from typing import NoReturn

import typer

from digestbot.cli.common import app

PROGRAM = "digestbot"
USAGE = 2
# What a shell reports for a program that SIGPIPE ended, as `yes | head -1` does.
CLOSED_PIPE = 128 + signal.SIGPIPE
INTERRUPTED = 128 + signal.SIGINT


def main(args: Sequence[str] | None = None) -> NoReturn:
    """Run `digestbot ARGS` (default: the process's arguments) and exit with its status."""
    try:
        code = _run(sys.argv[1:] if args is None else list(args))
        sys.stdout.flush()  # a reader that left early shows up here, not at interpreter exit
    except BrokenPipeError:
        # The Python docs' way (signal module, "Note on SIGPIPE"): point stdout at devnull so
        # that the flush at exit cannot fail again, and leave without a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        code = CLOSED_PIPE
    sys.exit(code)


def _run(args: list[str]) -> int:
    """The exit status of the command `args` name; usage errors are told on stderr."""
    command = typer.main.get_command(app)
    try:
        with command.make_context(PROGRAM, args) as ctx:
            command.invoke(ctx)
    except typer.Exit as exc:
        return exc.exit_code
    except typer.TyperException as exc:  # bad usage: unknown option or command, bad value
        _say_usage_error(exc)
        return exc.exit_code
    except KeyboardInterrupt:
        typer.echo(file=sys.stderr)
        return INTERRUPTED
    except (typer.Abort, EOFError):
        typer.echo("Error: aborted", err=True)
        return 1
    return 0


def _say_usage_error(exc: typer.TyperException) -> None:
    """`Error: <what>` on one line, then where to read how it is used."""
    message = " ".join(exc.format_message().split())
    if message[:1].isupper() and message[1:2].islower():
        message = message[0].lower() + message[1:]  # as every other `Error:` line reads
    typer.echo(f"Error: {message}", err=True)
    ctx = getattr(exc, "ctx", None)
    if exc.exit_code == USAGE and ctx is not None:
        typer.echo(f"Try '{ctx.command_path} -h' for help.", err=True)
