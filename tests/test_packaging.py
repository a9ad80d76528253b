"""Tests for what ships: the wheel's bundled files and the README's two commands."""

from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_carries_templates_example_and_sample_listing(tmp_path: Path) -> None:
    """A non-editable install finds everything the demo and the migrations need inside the
    package."""
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            str(ROOT),
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            "-q",
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("digestbot-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = {
        "digestbot/templates/digest.html",
        "digestbot/templates/digest.txt",
        "digestbot/templates/digest.subject.txt",
        "digestbot/templates/alert.html",
        "digestbot/templates/paper.html",
        "digestbot/templates/paper.txt",
        "digestbot/templates/email.css",
        "digestbot/templates/email-media.css",
        "digestbot/subscriptions.example.yaml",
        "digestbot/data/sample_listing.txt",
        "digestbot/data/sample_daily_papers.json",
        "digestbot/store/migrations/env.py",
        "digestbot/store/migrations/script.py.mako",
    }
    assert expected <= names
    revisions = {p.name for p in (ROOT / "digestbot/store/migrations/versions").glob("*.py")}
    assert revisions and {f"digestbot/store/migrations/versions/{r}" for r in revisions} <= names


def test_ci_runs_the_readme_test_command_word_for_word() -> None:
    """.ci/run runs exactly the test command the README gives."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- test-command -->\n```sh\n(.+?)\n```", readme, re.S)
    assert match, "README marks its test command with <!-- test-command -->"
    command = match.group(1).strip().splitlines()[-1]
    assert command in (ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()


def test_every_setting_is_documented_in_the_settings_page_and_env_example() -> None:
    """Each Settings field appears as DIGESTBOT_<NAME> in docs/settings.md's table and in
    .env.example."""
    from digestbot.settings import Settings

    readme = (ROOT / "docs" / "settings.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    for name in Settings.model_fields:
        variable = f"DIGESTBOT_{name.upper()}"
        assert f"| `{variable}` |" in readme, variable
        assert f"{variable}=" in example, variable
