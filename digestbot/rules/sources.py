"""Rules stage, config files: the `sources:` entries (what to ingest, from where, when), a
folder source's `path:` made absolute (and checked to exist).

A relative folder path is relative to the folder of the subscriptions file that names it,
not to the working directory: a daemon under systemd runs elsewhere than where the file was
written, and the file must mean the same folder to both.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from apscheduler.triggers.cron import CronTrigger
from pydantic import AfterValidator, Field, ValidationInfo, field_validator, model_validator

from digestbot.ingest.fetch import SourceKind, SourceSpec
from digestbot.ingest.folder import fixed_folder
from digestbot.ingest.links import web_url
from digestbot.rules.yamlfile import Strict

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


# When each kind of source publishes (UTC cron): HF's daily list fills during the day; arXiv
# refreshes its feeds around midnight US Eastern, Sunday to Thursday nights.
DEFAULT_SCHEDULES: dict[str, str] = {
    "hf": "0 */2 * * *",
    "arxiv": "30 5 * * mon-fri",
    "arxiv-query": "45 5 * * mon-fri",
    "feed": "0 */6 * * *",
    "folder": FOLDER_SCHEDULE,
}


def cron_trigger(expression: str) -> CronTrigger:
    """A UTC cron trigger from 5 fields (minute hour day month weekday), or 6 with a leading
    seconds field for sub-minute schedules."""
    fields = expression.split()
    if len(fields) == 6:
        second, minute, hour, day, month, weekday = fields
        return CronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=weekday,
            timezone="UTC",
        )
    return CronTrigger.from_crontab(expression, timezone="UTC")


def _check_cron(value: str) -> str:
    try:
        cron_trigger(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a cron expression: {exc}") from None
    return value


class SourceConfig(Strict):
    """A listing source to ingest: `hf`, `arxiv` (RSS), `arxiv-query` (API), `feed` or
    `folder` (saved files)."""

    kind: SourceKind
    categories: list[str] = Field(default_factory=list)
    query: str | None = None
    url: str | None = None
    include_replacements: bool = False
    max_results: int = Field(200, ge=1, le=2000)
    schedule: Annotated[str, AfterValidator(_check_cron)] | None = None
    path: str | None = None

    _absolute_path = field_validator("path")(check_folder_path)

    def effective_schedule(self) -> str:
        """The cron expression (UTC) the scheduler ingests this source on."""
        return self.schedule or DEFAULT_SCHEDULES[self.kind]

    @model_validator(mode="after")
    def _needs_its_target(self) -> SourceConfig:
        if self.kind == "arxiv" and not self.categories:
            raise ValueError("an arxiv source needs `categories`, e.g. [cs.CL]")
        if self.kind == "arxiv-query" and not (self.query or self.categories):
            raise ValueError("an arxiv-query source needs `query` or `categories`")
        if self.kind == "feed" and not web_url(self.url):
            raise ValueError("a feed source needs an http(s) `url`")
        if (self.kind == "folder") != (self.path is not None):
            raise ValueError("a folder source, and only a folder source, needs `path`")
        return self

    def spec(self) -> SourceSpec:
        """The fetchable form of this source."""
        return SourceSpec(
            kind=self.kind,
            categories=tuple(self.categories),
            query=self.query,
            url=self.url,
            include_replacements=self.include_replacements,
            max_results=self.max_results,
            path=self.path,
        )
