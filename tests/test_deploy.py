"""Tests for what `deploy/` ships: the systemd unit and the Docker Compose file run
`digestbot run` with real settings, and the tools that read them accept them."""

from __future__ import annotations

import configparser
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML
from sqlalchemy import create_engine

from digestbot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "digestbot.service"
COMPOSE = DEPLOY / "compose.yaml"
SETTING_NAMES = {f"DIGESTBOT_{name.upper()}" for name in Settings.model_fields}


def unit() -> configparser.ConfigParser:
    """The unit file read as INI (systemd's syntax is a superset; this one keeps to INI)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read(UNIT, encoding="utf-8")
    return parser


def compose() -> dict[str, Any]:
    loaded = YAML(typ="safe").load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(loaded, dict)
    return loaded


def test_the_systemd_unit_runs_the_daemon_as_its_own_user_and_restarts_it() -> None:
    """ExecStart runs `digestbot run` in the state folder, with the .env, restarted on failure."""
    service = unit()["Service"]
    assert service["ExecStart"].split()[1:] == ["run"]
    assert service["ExecStart"].split()[0].endswith("/bin/digestbot")
    assert service["Restart"] == "on-failure"
    assert service["EnvironmentFile"] == service["WorkingDirectory"] + "/.env"
    assert service["User"] not in ("", "root")
    assert service["NoNewPrivileges"] == "yes"
    assert service["ProtectSystem"] == "strict"
    # ProtectSystem=strict leaves only the state folder writable: it must be the working one.
    assert service["WorkingDirectory"] == "/var/lib/" + service["StateDirectory"]
    assert unit()["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(tmp_path: Path) -> None:
    """`systemd-analyze verify` accepts the unit without a warning (ExecStart pointed at this
    installation's digestbot, since verify checks that the program exists)."""
    here = Path(sys.executable).parent / "digestbot"
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={here}", UNIT.read_text(encoding="utf-8"))
    copy = tmp_path / "digestbot.service"
    copy.write_text(text, encoding="utf-8")
    done = subprocess.run(
        ["systemd-analyze", "verify", str(copy)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    # verify reports unknown keys and malformed lines as warnings only, with exit status 0.
    assert done.stdout + done.stderr == ""


def test_the_compose_file_runs_the_daemon_on_a_healthy_postgres() -> None:
    """digestbot is built from deploy/Dockerfile, runs `run` with the .env, and waits for a
    PostgreSQL that has a health check and keeps its data in a volume."""
    services = compose()["services"]
    postgres, bot = services["postgres"], services["digestbot"]
    assert postgres["image"].startswith("postgres:")
    assert "pg_isready" in " ".join(postgres["healthcheck"]["test"])
    (volume,) = postgres["volumes"]
    assert volume.split(":")[0] in compose()["volumes"]
    assert (COMPOSE.parent / bot["build"]["context"] / bot["build"]["dockerfile"]).is_file()
    assert bot["command"] == ["run"]
    assert bot["env_file"] == ".env"
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"


def test_the_compose_file_sets_only_real_settings_and_a_database_url_digestbot_opens() -> None:
    """Every DIGESTBOT_ name it sets is a setting, and its database URL names PostgreSQL
    through psycopg, the driver digestbot uses, on the postgres service."""
    environment = compose()["services"]["digestbot"]["environment"]
    assert set(environment) <= SETTING_NAMES
    url = environment["DIGESTBOT_DATABASE_URL"].replace("${POSTGRES_PASSWORD}", "pw")
    engine = create_engine(url)  # builds the dialect and loads the driver; connects to nothing
    assert (engine.dialect.name, engine.dialect.driver) == ("postgresql", "psycopg")
    assert engine.url.host == "postgres"
    assert engine.url.database == compose()["services"]["postgres"]["environment"]["POSTGRES_DB"]
    engine.dispose()


def test_the_image_installs_digestbot_with_its_postgres_driver_and_runs_the_daemon() -> None:
    """The Dockerfile installs the `postgres` extra, drops root and runs `digestbot run`."""
    text = (DEPLOY / "Dockerfile").read_text(encoding="utf-8")
    assert re.search(r"pip install '[^']*\[postgres\]'", text)
    assert re.search(r"(?m)^USER (?!root)\w+", text)
    assert 'ENTRYPOINT ["digestbot"]' in text
    assert 'CMD ["run"]' in text


def _docker_compose() -> bool:
    if shutil.which("docker") is None:
        return False
    found = subprocess.run(["docker", "compose", "version"], capture_output=True, timeout=60)
    return found.returncode == 0


@pytest.mark.skipif(not _docker_compose(), reason="no docker compose here")
def test_docker_compose_accepts_the_compose_file(tmp_path: Path) -> None:
    """`docker compose config` reads the file with a `.env` and subscriptions beside it."""
    for name in ("compose.yaml", "Dockerfile"):
        shutil.copy(DEPLOY / name, tmp_path / name)
    (tmp_path / ".env").write_text("POSTGRES_PASSWORD=pw\n", encoding="utf-8")
    (tmp_path / "subscriptions.yaml").write_text("subscribers: []\n", encoding="utf-8")
    done = subprocess.run(
        ["docker", "compose", "-f", str(tmp_path / "compose.yaml"), "config", "--quiet"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
