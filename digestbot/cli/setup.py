"""CLI setup stage: `digestbot init` writes a commented subscriptions file, a `.env` template
made from the Settings model, and the database."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, get_args

import typer
from pydantic import SecretStr
from pydantic.fields import FieldInfo
from sqlalchemy.engine import make_url

from digestbot.cli.common import app, friendly, load_settings, open_engine, out, sqlite_file
from digestbot.errors import ConfigError
from digestbot.resources import bundled_path
from digestbot.settings import Settings

SUBSCRIPTIONS = "subscriptions.yaml"
ENV = ".env"
_ENV_HEADER = """\
# digestbot settings. Each one is commented out and shows its default; uncomment a line
# and set a value to change it. The environment overrides this file.
# To mail real readers set at least DIGESTBOT_SMTP_HOST, DIGESTBOT_FROM_ADDRESS and, if
# the server needs them, DIGESTBOT_SMTP_USERNAME and DIGESTBOT_SMTP_PASSWORD; without
# DIGESTBOT_SMTP_HOST, emails are written to DIGESTBOT_OUTBOX_DIR instead.
"""
# The bundled example tells people to copy it; the written file is that copy already.
_COPY_LINE = "#   cp subscriptions.example.yaml subscriptions.yaml     # then edit it\n"


def env_template() -> str:
    """A `.env` with every setting commented out: its description, then its default (secrets
    and unset values empty). Made from Settings, so it lists exactly the settings there are."""
    blocks = [_ENV_HEADER]
    for name, field in Settings.model_fields.items():
        blocks.append(f"# {field.description}\n# DIGESTBOT_{name.upper()}={_shown(field)}\n")
    return "\n".join(blocks)


def _shown(field: FieldInfo) -> str:
    """A field's default as it would be written in `.env`: empty for a secret or None."""
    default: Any = field.default
    if default is None or _is_secret(field.annotation):
        return ""
    if isinstance(default, bool):
        return "true" if default else "false"
    if isinstance(default, float):
        return f"{default:g}"
    return str(default)


def _is_secret(annotation: Any) -> bool:
    return annotation is SecretStr or any(_is_secret(a) for a in get_args(annotation))


def subscriptions_template() -> str:
    """The bundled example subscriptions, every line of it explained in its comments."""
    text = bundled_path("subscriptions.example.yaml").read_text(encoding="utf-8")
    return text.replace(_COPY_LINE, "")


@app.command()
@friendly
def init(
    folder: Annotated[
        Path,
        typer.Option(
            "--folder",
            metavar="DIR",
            show_default=False,
            help="Set up in this folder (default: the current one).",
        ),
    ] = Path("."),
) -> None:
    """Set up a folder: subscriptions.yaml, .env and the database.

    Writes a commented subscriptions.yaml and a .env listing every setting (commented out),
    and creates the database. Overwrites nothing: an existing file stops it first."""
    settings = load_settings()
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{folder} is not a folder", "give --folder a folder, or a new name")
    targets = {folder / SUBSCRIPTIONS: subscriptions_template(), folder / ENV: env_template()}
    there = [str(path) for path in targets if path.exists()]
    if there:
        one = len(there) == 1
        raise ConfigError(
            f"{' and '.join(there)} already {'exists' if one else 'exist'}",
            f"init overwrites nothing: move {'it' if one else 'them'} away, or use --folder DIR",
        )
    for path, text in targets.items():
        _write(path, text)
        out.print(f"Wrote {path}", markup=False)
    settings = settings.model_copy(update={"database_url": _in(folder, settings.database_url)})
    existed = _database_exists(settings.database_url)
    with open_engine(settings, create=True):
        pass
    where = sqlite_file(settings.database_url) or "the database at DIGESTBOT_DATABASE_URL"
    out.print(f"{'Found' if existed else 'Created'} {where}", markup=False)
    _print_next_steps(folder)


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        # "x": never over a file made meanwhile. Only its owner may read the `.env`: it will
        # hold the SMTP password and the key that signs readers' links.
        mode = 0o600 if path.name == ENV else 0o644
        descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, mode)
        with open(descriptor, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise ConfigError(f"cannot write {path}: {exc.strerror}", "check the folder") from None


def _in(folder: Path, url: str) -> str:
    """`url` with a relative SQLite path taken from `folder`, where the `.env` is."""
    path = sqlite_file(url)
    if path is None or path.is_absolute():
        return url
    return make_url(url).set(database=str(folder / path)).render_as_string(hide_password=False)


def _database_exists(url: str) -> bool:
    path = sqlite_file(url)
    return path is None or path.exists()


def _print_next_steps(folder: Path) -> None:
    steps = [
        f"Edit {SUBSCRIPTIONS}: who gets which papers, and from which sources (its example"
        " readers at example.org reach no one: put yours in).",
        "Edit .env: set DIGESTBOT_SMTP_HOST, DIGESTBOT_FROM_ADDRESS (and the SMTP login) "
        "to mail real readers; without them emails are written to ./outbox.",
        "digestbot subscriptions sync",
        "digestbot ingest --all",
        "digestbot send-now --dry-run",
    ]
    if folder.resolve() != Path.cwd().resolve():
        steps.insert(0, f"cd {folder}")
    out.print("Next steps:")
    for number, step in enumerate(steps, 1):
        out.print(f"  {number}. {step}", markup=False)
