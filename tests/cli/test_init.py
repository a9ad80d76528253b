"""Tests for `digestbot init` and for commands run where there is no database."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import LISTING_000
from helpers import ALICE_YAML
from typer.testing import CliRunner

from digestbot.cli import app
from digestbot.cli.common import sqlite_file
from digestbot.cli.setup import env_template, subscriptions_template
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings

ROOT = Path(__file__).resolve().parents[2]
NO_DATABASE = "Error: no database here ({}): run digestbot init, or set DIGESTBOT_DATABASE_URL"


def invoke(*args: str) -> object:
    return CliRunner().invoke(app, list(args), catch_exceptions=False)


def test_init_writes_subscriptions_an_env_template_and_the_database(tmp_path: Path) -> None:
    """init writes both files and the database, and says what to do next."""
    result = invoke("init")
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert (tmp_path / ".env").read_text(encoding="utf-8") == env_template()
    assert (tmp_path / ".env").stat().st_mode & 0o077 == 0  # it will hold secrets
    written = (tmp_path / "subscriptions.yaml").read_text(encoding="utf-8")
    assert written == subscriptions_template()
    assert parse_subscriptions(written, source="subscriptions.yaml").subscribers
    assert (tmp_path / "digestbot.db").is_file()
    shown = result.stdout  # type: ignore[attr-defined]
    for step in (
        "Edit subscriptions.yaml",
        "DIGESTBOT_SMTP_HOST",
        "digestbot subscriptions sync",
        "digestbot ingest --all",
        "digestbot send-now --dry-run",
    ):
        assert step in shown
    assert invoke("subscriptions", "sync").exit_code == 0  # type: ignore[attr-defined]


def test_the_written_subscriptions_file_does_not_tell_you_to_copy_itself() -> None:
    """The example's `cp subscriptions.example.yaml …` line is left out of the copy."""
    assert "cp subscriptions.example.yaml" not in subscriptions_template()


def test_the_env_template_comments_out_every_setting_with_its_description() -> None:
    """Every Settings field is a commented `# DIGESTBOT_<NAME>=` line under its description."""
    lines = env_template().splitlines()
    assert all(not line or line.startswith("#") for line in lines)
    for name, field in Settings.model_fields.items():
        at = next(
            i for i, line in enumerate(lines) if line.startswith(f"# DIGESTBOT_{name.upper()}=")
        )
        assert lines[at - 1] == f"# {field.description}"


def test_the_env_template_loads_as_the_defaults(tmp_path: Path) -> None:
    """As written, and with every line that shows a default uncommented, it means the defaults."""
    written = tmp_path / "written.env"
    written.write_text(env_template(), encoding="utf-8")
    uncommented = tmp_path / "uncommented.env"
    uncommented.write_text(
        "".join(
            line[2:] + "\n"
            for line in env_template().splitlines()
            if line.startswith("# DIGESTBOT_") and not line.endswith("=")
        ),
        encoding="utf-8",
    )
    defaults = Settings(_env_file=None)  # type: ignore[call-arg]
    assert Settings(_env_file=written) == defaults  # type: ignore[call-arg]
    assert Settings(_env_file=uncommented) == defaults  # type: ignore[call-arg]


def test_the_env_template_shows_secrets_empty() -> None:
    """The password and the key that signs readers' links are empty, never a placeholder to
    forget."""
    lines = env_template().splitlines()
    assert "# DIGESTBOT_SMTP_PASSWORD=" in lines
    assert "# DIGESTBOT_SECRET_KEY=" in lines


def test_the_repositorys_env_example_is_what_init_writes() -> None:
    """.env.example cannot drift from the settings: it is the generated template."""
    assert (ROOT / ".env.example").read_text(encoding="utf-8") == env_template()


@pytest.mark.parametrize("existing", ["subscriptions.yaml", ".env"])
def test_init_refuses_to_overwrite_an_existing_file(tmp_path: Path, existing: str) -> None:
    """One Error line naming the file, exit 1, and nothing written, not even the other file."""
    (tmp_path / existing).write_text("mine\n", encoding="utf-8")
    result = invoke("init")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    (line,) = result.stderr.splitlines()  # type: ignore[attr-defined]
    assert line.startswith(f"Error: {existing} already exists (")
    assert sorted(p.name for p in tmp_path.iterdir()) == [existing]
    assert (tmp_path / existing).read_text(encoding="utf-8") == "mine\n"


def test_init_in_a_folder_sets_up_there(tmp_path: Path) -> None:
    """--folder DIR writes the files and the default database in DIR and says to cd there."""
    result = invoke("init", "--folder", "bot")
    assert result.exit_code == 0
    assert {p.name for p in (tmp_path / "bot").iterdir()} == {
        ".env",
        "subscriptions.yaml",
        "digestbot.db",
    }
    assert "1. cd bot" in result.stdout  # type: ignore[attr-defined]
    assert not (tmp_path / "digestbot.db").exists()


def test_init_creates_the_database_that_digestbot_database_url_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An absolute DIGESTBOT_DATABASE_URL is where init creates the database."""
    target = tmp_path / "data" / "bot.db"
    target.parent.mkdir()
    monkeypatch.setenv("DIGESTBOT_DATABASE_URL", f"sqlite:///{target}")
    assert invoke("init", "--folder", "elsewhere").exit_code == 0  # type: ignore[attr-defined]
    assert target.is_file()


@pytest.mark.parametrize(
    "args",
    [
        ["status"],
        ["send-now"],
        ["send-now", "--dry-run"],
        ["preview", "alice@example.org"],
        ["papers", "list"],
        ["db", "current"],
        ["run"],
    ],
    ids=" ".join,
)
def test_a_command_that_reads_the_database_refuses_where_there_is_none(
    tmp_path: Path, args: list[str]
) -> None:
    """No database file: one Error line saying how to start, exit 1, and no file made."""
    result = invoke(*args)
    assert result.exit_code == 1  # type: ignore[attr-defined]
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]  # type: ignore[attr-defined]
    assert errors == [NO_DATABASE.format(tmp_path / "digestbot.db")]
    assert not (tmp_path / "digestbot.db").exists()


@pytest.mark.parametrize(
    "args",
    [
        ["ingest", str(LISTING_000)],
        ["subscriptions", "sync"],
        ["db", "upgrade"],
        ["init"],
    ],
    ids=" ".join,
)
def test_the_commands_that_set_up_a_database_create_it(tmp_path: Path, args: list[str]) -> None:
    """ingest, subscriptions sync, db upgrade and init make the database where there is none."""
    if args[0] == "subscriptions":
        (tmp_path / "subscriptions.yaml").write_text(ALICE_YAML, encoding="utf-8")
    result = invoke(*args)
    assert result.exit_code == 0, result.stderr  # type: ignore[attr-defined]
    assert (tmp_path / "digestbot.db").is_file()
    assert invoke("status").exit_code == 0  # type: ignore[attr-defined]


def test_db_upgrade_says_it_created_the_database(tmp_path: Path) -> None:
    """On a fresh folder `db upgrade` says it created the database, not nothing."""
    result = invoke("db", "upgrade")
    assert result.stdout.startswith("Created the database at revision ")  # type: ignore[attr-defined]


def test_validating_subscriptions_needs_no_database(tmp_path: Path) -> None:
    """`subscriptions validate` checks the file alone and creates no database."""
    (tmp_path / "subscriptions.yaml").write_text(ALICE_YAML, encoding="utf-8")
    assert invoke("subscriptions", "validate").exit_code == 0  # type: ignore[attr-defined]
    assert not (tmp_path / "digestbot.db").exists()


@pytest.mark.parametrize(
    ("url", "file"),
    [
        ("sqlite:///digestbot.db", Path("digestbot.db")),
        ("sqlite:////var/lib/digestbot/bot.db", Path("/var/lib/digestbot/bot.db")),
        ("sqlite://", None),
        ("sqlite:///:memory:", None),
        ("postgresql://digestbot@db.example/digestbot", None),
        ("postgresql://digestbot@127.0.0.1:port/digestbot", None),
    ],
)
def test_only_sqlite_files_are_checked_for_existence(url: str, file: Path | None) -> None:
    """The check is for SQLite files; a server, or memory, answers for itself."""
    assert sqlite_file(url) == file


def test_init_into_a_file_says_it_is_not_a_folder(tmp_path: Path) -> None:
    """--folder naming a file is one Error line, exit 1, and nothing is written."""
    (tmp_path / "taken").write_text("", encoding="utf-8")
    result = invoke("init", "--folder", "taken")
    assert result.exit_code == 1  # type: ignore[attr-defined]
    assert result.stderr.splitlines() == [  # type: ignore[attr-defined]
        "Error: taken is not a folder (give --folder a folder, or a new name)"
    ]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"]
