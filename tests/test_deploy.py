"""Tests for what `deploy/` ships: the systemd unit and the Docker Compose file run
`digestbot run` with real settings, and the tools that read them accept them."""

from __future__ import annotations

import configparser
import re
import shlex
import shutil
import signal
import subprocess
import sys
import zipfile
from pathlib import Path
from typing import Any

import pytest
from conftest import FEEDS, HttpServer, Reply
from helpers import host_environment, wait_for
from ruamel.yaml import YAML
from sqlalchemy import create_engine

from digestbot.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
UNIT = DEPLOY / "digestbot.service"
SERVE_UNIT = DEPLOY / "digestbot-serve.service"
COMPOSE = DEPLOY / "compose.yaml"
DOCKERFILE = DEPLOY / "Dockerfile"
DOCKERIGNORE = DEPLOY / "Dockerfile.dockerignore"
README = (ROOT / "README.md").read_text(encoding="utf-8")
SETTING_NAMES = {f"DIGESTBOT_{name.upper()}" for name in Settings.model_fields}


def unit(path: Path = UNIT) -> configparser.ConfigParser:
    """A unit file read as INI (systemd's syntax is a superset; these keep to INI)."""
    parser = configparser.ConfigParser(interpolation=None, strict=True)
    parser.optionxform = str  # type: ignore[assignment,method-assign]  # keep key case
    parser.read(path, encoding="utf-8")
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


def test_the_serve_unit_runs_the_site_as_the_daemons_user_in_its_folder_as_hardened() -> None:
    """digestbot-serve.service runs `digestbot serve` with everything else of the daemon's
    [Service] the same but its restart pace: same user, folder, .env and sandbox."""
    site, daemon = dict(unit(SERVE_UNIT)["Service"]), dict(unit()["Service"])
    assert site.pop("ExecStart").split() == [daemon.pop("ExecStart").split()[0], "serve"]
    for pace in ("RestartSec", "TimeoutStopSec"):
        site.pop(pace), daemon.pop(pace)
    assert site == daemon
    assert unit(SERVE_UNIT)["Install"]["WantedBy"] == "multi-user.target"


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze here")
@pytest.mark.parametrize("path", [UNIT, SERVE_UNIT], ids=lambda p: p.name)
def test_systemd_analyze_verify_finds_nothing_wrong_with_the_unit(
    tmp_path: Path, path: Path
) -> None:
    """`systemd-analyze verify` accepts each unit without a warning (ExecStart pointed at this
    installation's digestbot, since verify checks that the program exists)."""
    here = Path(sys.executable).parent / "digestbot"
    text = re.sub(r"(?m)^ExecStart=\S+", f"ExecStart={here}", path.read_text(encoding="utf-8"))
    copy = tmp_path / path.name
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
    assert bot["command"] == ["run", "--no-work"]
    assert bot["env_file"] == ".env"
    assert bot["depends_on"]["postgres"]["condition"] == "service_healthy"


def seconds(duration: str) -> int:
    """A compose duration such as `90s` or `2m`, in seconds."""
    match = re.fullmatch(r"(\d+)([sm])", duration)
    assert match, duration
    return int(match.group(1)) * (60 if match.group(2) == "m" else 1)


def test_the_compose_worker_scales_on_the_daemons_image_and_settings() -> None:
    """The worker service runs `worker` from the daemon's image with its settings, files and
    healthy database, names no container and publishes no port (so `--scale` can repeat it),
    and is given longer than an SMTP timeout to finish its slice and message on SIGTERM."""
    services = compose()["services"]
    bot, worker = services["digestbot"], services["worker"]
    assert worker["command"] == ["worker"]
    assert "container_name" not in worker and "ports" not in worker
    for key in ("image", "build", "env_file", "environment", "volumes", "depends_on", "restart"):
        assert worker[key] == bot[key], key
    assert seconds(worker["stop_grace_period"]) > Settings.model_fields["smtp_timeout"].default
    assert seconds(worker["stop_grace_period"]) >= seconds(bot["stop_grace_period"])


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


def copies() -> list[list[str]]:
    """The Dockerfile's COPY instructions, each as its sources and then its destination."""
    text = DOCKERFILE.read_text(encoding="utf-8")
    return [line.split()[1:] for line in text.splitlines() if line.startswith("COPY ")]


def test_the_image_is_built_from_named_files_never_the_whole_context() -> None:
    """No COPY takes the build context whole, so a .env, subscriptions.yaml or database beside
    compose.yaml cannot end up in a layer of the image."""
    assert copies()
    for *sources, _ in copies():
        assert not any(s.startswith("--") for s in sources)
        assert all(s.strip("./") and "*" not in s for s in sources), sources


def test_the_files_the_image_copies_are_enough_to_build_digestbot(tmp_path: Path) -> None:
    """A wheel builds from exactly what the Dockerfile copies (laid out as COPY does), and
    carries the templates and the example subscriptions."""
    for *sources, destination in copies():
        assert destination.startswith("/src/") and destination.endswith("/")
        target = tmp_path / destination.removeprefix("/src/")
        for source in sources:
            if (ROOT / source).is_dir():  # COPY puts a folder's contents into the destination
                ignore = shutil.ignore_patterns("__pycache__")
                shutil.copytree(ROOT / source, target, ignore=ignore, dirs_exist_ok=True)
            else:
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy(ROOT / source, target / Path(source).name)
    wheels = tmp_path / "wheels"
    command = [sys.executable, "-m", "pip", "wheel", str(tmp_path), "--no-deps"]
    built = subprocess.run(
        [*command, "--no-build-isolation", "-w", str(wheels), "-q"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert built.returncode == 0, built.stderr
    (wheel,) = wheels.glob("digestbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {"digestbot/templates/digest.html", "digestbot/subscriptions.example.yaml"} <= names


def ignored(path: str) -> bool:
    """Whether the ignore file keeps `path` (relative to the context) out of the build: a
    pattern matching it or a folder above it, `**` standing for any number of folders."""
    patterns = []
    for line in DOCKERIGNORE.read_text(encoding="utf-8").splitlines():
        if line.strip() and not line.startswith("#"):
            assert not line.startswith("!"), "exceptions would need Docker's full rules"
            parts = [
                "(?:[^/]+/)*" if part == "**" else re.escape(part).replace(r"\*", "[^/]*") + "/"
                for part in line.strip().strip("/").split("/")
            ]
            patterns.append(re.compile("".join(parts).removesuffix("/")))
    steps = path.split("/")
    prefixes = ["/".join(steps[: n + 1]) for n in range(len(steps))]
    return any(p.fullmatch(prefix) for p in patterns for prefix in prefixes)


@pytest.mark.parametrize(
    "path",
    [
        ".env",
        "deploy/.env",
        "subscriptions.yaml",
        "deploy/subscriptions.yaml",
        "digestbot.db",
        "deploy/digestbot.db",
        "deploy/digestbot.db-wal",
        ".venv/bin/python",
        ".venv-3.12/bin/python",
        "deploy/venv/bin/python",
        "outbox/1.eml",
        "digestbot-demo/digestbot.db",
        ".git/config",
    ],
)
def test_the_ignore_file_keeps_secrets_addresses_and_state_out_at_any_depth(path: str) -> None:
    """Settings, subscribers, databases, outboxes and virtualenvs stay out of the build
    context wherever they lie, deploy/ included, where compose wants .env beside it."""
    assert ignored(path)


@pytest.mark.parametrize(
    "path",
    ["pyproject.toml", "README.md", "subscriptions.example.yaml", "digestbot/cli/setup.py"],
)
def test_the_ignore_file_keeps_what_the_build_needs(path: str) -> None:
    """What the Dockerfile copies is still in the build context."""
    assert not ignored(path)


def readme_systemd_steps() -> list[str]:
    """The README's systemd block, line by line."""
    match = re.search(r"<!-- systemd -->\n```sh\n(.*?)\n```", README, re.S)
    assert match, "README marks its systemd steps with <!-- systemd -->"
    return match.group(1).splitlines()


def as_service_user(line: str) -> str | None:
    """The shell script of a `sudo -u digestbot sh -c '…'` line; None for other lines."""
    words = shlex.split(line)
    if words[:5] != ["sudo", "-u", unit()["Service"]["User"], "sh", "-c"]:
        return None
    (script,) = words[5:]
    return script


def test_the_readme_systemd_steps_set_up_a_folder_the_unit_starts_in(
    tmp_path: Path, http_server: HttpServer
) -> None:
    """The README's commands run as the service user, in a folder laid out like the state
    folder, make a database before the unit is started, and `digestbot run` started there as
    the unit starts it runs (instead of refusing and being restarted every 30 s)."""
    steps = readme_systemd_steps()
    started = next(n for n, line in enumerate(steps) if "systemctl enable --now" in line)
    scripts = [as_service_user(line) for line in steps[:started]]
    assert any(s and "db upgrade" in s for s in scripts)
    service = unit()["Service"]
    state, program = service["WorkingDirectory"], service["ExecStart"].split()[0]
    assert any(
        f"install -o {service['User']} -m 600 .env subscriptions.yaml {state}/" in s for s in steps
    )
    # No internet in tests: the Hugging Face API is a loopback server with a saved answer.
    body = (FEEDS / "hf_daily_papers_2025-01-15.json").read_bytes()
    http_server.route("/api/daily_papers", Reply(body=body))
    env = host_environment()
    env["DIGESTBOT_HF_BASE_URL"] = http_server.base_url
    here = str(Path(sys.executable).parent / "digestbot")
    folder = tmp_path / "var-lib-digestbot"
    folder.mkdir()
    made = subprocess.run([here, "init"], cwd=tmp_path, env=env, capture_output=True, timeout=120)
    assert made.returncode == 0, made.stderr
    # The `install` line: init's .env, and the README's first subscriptions (only Hugging Face).
    shutil.copy(tmp_path / ".env", folder / ".env")
    first = re.search(r"<!-- recipe: first-subscriptions -->\n```yaml\n(.*?)```", README, re.S)
    assert first
    (folder / "subscriptions.yaml").write_text(first.group(1), encoding="utf-8")
    for script in filter(None, scripts):
        local = script.replace(state, str(folder)).replace(program, here)
        done = subprocess.run(["sh", "-c", local], env=env, capture_output=True, timeout=120)
        assert done.returncode == 0, (script, done.stderr)
    log = (tmp_path / "run.log").open("w", encoding="utf-8")
    daemon = subprocess.Popen([here, "run"], cwd=folder, env=env, stderr=log, stdout=log)

    def status() -> str:
        shown = subprocess.run(
            [here, "status"], cwd=folder, env=env, capture_output=True, text=True, timeout=60
        )
        return shown.stdout

    try:
        assert wait_for(lambda: "Scheduler: running" in status() or daemon.poll() is not None, 45)
        assert daemon.poll() is None, (tmp_path / "run.log").read_text(encoding="utf-8")
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=60) == 0
    finally:
        if daemon.poll() is None:
            daemon.kill()
        log.close()
