"""Rules stage, config files: a folder source's `path:` made absolute (and checked to exist).

A relative path is relative to the folder of the subscriptions file that names it, not to
the working directory: a daemon under systemd runs elsewhere than where the file was
written, and the file must mean the same folder to both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pydantic import ValidationInfo

from digestbot.ingest.folder import fixed_folder

# The validation context keys under which parse_subscriptions passes the file's folder, and
# whether a missing folder is an error (in `validate`; elsewhere it fails only its runs, so
# a drive not mounted yet stops no other source and no daemon start).
BASE_KEY = "folder_base"
CHECK_KEY = "check_folders"

# Drop a page in and see it within minutes; an unchanged folder costs a listing and a hash
# of each file.
FOLDER_SCHEDULE = "*/5 * * * *"


def absolute_pattern(value: str, base: Path) -> str:
    """`value` with `~` expanded and, when relative, joined to `base`."""
    path = Path(value).expanduser()
    return str(path if path.is_absolute() else base / path)


def check_folder_path(value: str | None, info: ValidationInfo) -> str | None:
    """The absolute form of a folder source's path or glob; when checking, its fixed
    leading folder must exist (a glob may match nothing yet)."""
    if value is None:
        return None
    if not value.strip():
        raise ValueError("must name a folder or a glob such as ~/papers/*.txt")
    context: Any = info.context or {}
    base = Path(context.get(BASE_KEY) or Path.cwd())
    pattern = absolute_pattern(value.strip(), base)
    folder = fixed_folder(pattern)
    if context.get(CHECK_KEY) and not folder.is_dir():
        what = "is not a folder" if folder.exists() else "does not exist"
        raise ValueError(f"folder {folder} {what}")
    return pattern
