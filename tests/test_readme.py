"""Tests for the README: its `.env` recipes, its five-minute walk-through, its error quotes
and its links hold for the digestbot they describe."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import FEEDS, HttpServer, Reply, SmtpServer
from helpers import host_environment

from digestbot.cli.common import load_settings
from digestbot.cli.config import where_emails_go
from digestbot.errors import SettingsError
from digestbot.rules.subscriptions import parse_subscriptions

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text(encoding="utf-8")


def marked_block(marker: str) -> str:
    """The fenced block right after `<!-- MARKER -->` in the README."""
    match = re.search(rf"<!-- {re.escape(marker)} -->\n```\w*\n(.*?)\n```", README, re.S)
    assert match, f"README has no block marked <!-- {marker} -->"
    return match.group(1) + "\n"


# Recipe -> what the settings must come to: host, port, TLS mode, login, the line saying where
# emails go.
RECIPES = {
    "gmail": ("smtp.gmail.com", 587, "starttls", "you@gmail.com", "smtp.gmail.com:587 (STARTTLS)"),
    "fastmail": (
        "smtp.fastmail.com",
        465,
        "tls",
        "you@fastmail.com",
        "smtp.fastmail.com:465 (TLS)",
    ),
    "ses": (
        "email-smtp.eu-west-1.amazonaws.com",
        587,
        "starttls",
        "AKIAIOSFODNN7EXAMPLE",
        "email-smtp.eu-west-1.amazonaws.com:587 (STARTTLS)",
    ),
    "postfix": ("localhost", 25, "none", None, "localhost:25 (no TLS)"),
    "local": ("127.0.0.1", 1025, "none", None, "127.0.0.1:1025 (no TLS)"),
}


@pytest.mark.parametrize("name", RECIPES)
def test_each_env_recipe_passes_the_settings_check_and_sends_where_it_says(
    name: str, tmp_path: Path
) -> None:
    """A recipe pasted into `.env` passes every check `send-now` makes and points at its server."""
    (tmp_path / ".env").write_text(marked_block(f"recipe: {name}"), encoding="utf-8")
    settings = load_settings(sends=True)
    host, port, tls, username, where = RECIPES[name]
    got = (settings.smtp_host, settings.effective_smtp_port, settings.smtp_tls)
    assert got == (host, port, tls)
    assert settings.smtp_username == username
    assert (settings.smtp_password is not None) == (username is not None)
    assert where_emails_go(settings) == f"sending through {where}"


def digestbot(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """`digestbot ARGS` in its own process in the current folder."""
    return subprocess.run(
        [sys.executable, "-m", "digestbot", *args],
        env=env,
        text=True,
        capture_output=True,
        timeout=120,
    )


def walkthrough() -> list[list[str]]:
    """The digestbot commands of the five-minute block, in order, without their comments."""
    lines = [line.split("#", 1)[0].split() for line in marked_block("five-minutes").splitlines()]
    return [words[1:] for words in lines if words[:1] == ["digestbot"]]


def test_the_five_minute_walkthrough_delivers_a_digest_to_a_local_smtp_server(
    tmp_path: Path, smtp_server: SmtpServer, http_server: HttpServer
) -> None:
    """The walk-through's commands, run as written with the README's subscriptions and the
    local-server recipe (only its port changed), put a digest in the server's inbox."""
    steps = walkthrough()
    assert steps[:2] == [["init"], ["subscriptions", "sync"]]
    # No internet in tests: the Hugging Face API is a loopback server with a saved answer.
    body = (FEEDS / "hf_daily_papers_2025-01-15.json").read_bytes()
    http_server.route("/api/daily_papers", Reply(body=body))
    env = host_environment()
    env["DIGESTBOT_HF_BASE_URL"] = http_server.base_url
    recipe = marked_block("recipe: local")
    assert "DIGESTBOT_SMTP_HOST=127.0.0.1\n" in recipe
    port_line = f"DIGESTBOT_SMTP_PORT={smtp_server.port}"
    recipe = re.sub(r"(?m)^DIGESTBOT_SMTP_PORT=.*$", port_line, recipe)
    initialised = digestbot("init", env=env)
    assert initialised.returncode == 0, initialised.stderr
    with (tmp_path / ".env").open("a", encoding="utf-8") as dotenv:
        dotenv.write("\n" + recipe)
    (tmp_path / "subscriptions.yaml").write_text(marked_block("recipe: first-subscriptions"))
    outputs = []
    for step in steps[1:]:
        done = digestbot(*step, env=env)
        assert done.returncode == 0, (step, done.stdout, done.stderr)
        outputs.append(done)
    dry_run, sent = outputs[-2:]
    assert "you@your-lab.org" in dry_run.stdout
    assert f"sending through 127.0.0.1:{smtp_server.port} (no TLS)" in sent.stderr
    (message,) = smtp_server.inbox.messages
    assert message["To"].addresses[0].addr_spec == "you@your-lab.org"
    assert message["From"].addresses[0].addr_spec == "digests@lab.example"
    assert "Diffusion Adversarial Post-Training" in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    ("dotenv", "quoted"),
    [
        (
            "DIGESTBOT_SMTP_SERVER=smtp.gmail.com\n",
            "DIGESTBOT_SMTP_SERVER (in .env) is not a digestbot setting (did you mean "
            "DIGESTBOT_SMTP_HOST?)",
        ),
        ("DIGESTBOT_SMTP_PORT=587\n", "DIGESTBOT_SMTP_PORT set but DIGESTBOT_SMTP_HOST is not"),
        (
            "DIGESTBOT_SMTP_HOST=smtp.gmail.com\n",
            "DIGESTBOT_FROM_ADDRESS is the placeholder digestbot@example.org",
        ),
    ],
)
def test_the_troubleshooting_quotes_settings_errors_as_digestbot_prints_them(
    dotenv: str, quoted: str, tmp_path: Path
) -> None:
    """Each settings error the README quotes is what the settings check says for that `.env`."""
    (tmp_path / ".env").write_text(dotenv, encoding="utf-8")
    with pytest.raises(SettingsError) as raised:
        load_settings(sends=True)
    assert quoted in str(raised.value)
    assert quoted in " ".join(README.split())


@pytest.mark.parametrize(
    "page", ["README.md", *sorted(str(p.relative_to(ROOT)) for p in ROOT.glob("docs/*.md"))]
)
def test_every_file_a_page_links_to_exists(page: str) -> None:
    """Each relative link in the README and in docs/ names a file or folder of the repository."""
    text = (ROOT / page).read_text(encoding="utf-8")
    targets = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [t for t in targets if "://" not in t]
    missing = [t for t in local if not ((ROOT / page).parent / t).exists()]
    assert not missing


def test_the_readme_points_to_every_page_of_docs() -> None:
    """Nothing moved out of the README is out of reach: it links to each page in docs/."""
    for page in ROOT.glob("docs/*.md"):
        assert f"](docs/{page.name})" in README, page.name


def test_every_subscriptions_example_in_the_readme_validates(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Each YAML block of the README is a subscriptions file digestbot accepts (its folder
    source's ~/papers existing)."""
    monkeypatch.setenv("HOME", str(tmp_path))
    (tmp_path / "papers").mkdir()
    blocks = re.findall(r"```yaml\n(.*?)\n```", README, re.S)
    assert len(blocks) >= 2
    for n, text in enumerate(blocks):
        spec = parse_subscriptions(text, source=f"README yaml block {n}")
        assert spec.subscribers
