"""Bundled files: found inside the installed package, or at the repository root when editable."""

from __future__ import annotations

from pathlib import Path

from digestbot.errors import ConfigError

_PACKAGE = Path(__file__).resolve().parent


def bundled_path(name: str) -> Path:
    """Path of a bundled file or folder such as `templates` or `subscriptions.example.yaml`."""
    for base in (_PACKAGE, _PACKAGE / "data", _PACKAGE.parent):
        candidate = base / name
        if candidate.exists():
            return candidate
    raise ConfigError(f"bundled file {name!r} is missing", "reinstall digestbot")
