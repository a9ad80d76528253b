"""Tests for `kind: folder` sources on the command line: validation with line numbers, paths
relative to the subscriptions file, and `ingest --all` reporting each file."""

from __future__ import annotations

import os
import shutil
from datetime import UTC, datetime
from pathlib import Path

import pytest
from conftest import LISTING_000

from digestbot.rules.subscriptions import load_subscriptions
from digestbot.schedule import ledger
from digestbot.store.engine import make_engine

READER = "subscribers:\n  - email: alice@lab.example\n    rules:\n      - any: [transformer]\n"


def folder_file(where: Path, path: str) -> Path:
    """A subscriptions file in `where` with one hf source and one folder source at `path`."""
    where.mkdir(parents=True, exist_ok=True)
    target = where / "subscriptions.yaml"
    target.write_text(f"sources:\n  - kind: hf\n  - kind: folder\n    path: {path}\n" + READER)
    return target


def test_validate_reports_a_missing_folder_at_its_line(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """A folder source whose folder (or a glob's leading folder) is missing is an error
    naming the file, line and column of its `path:`, exit 1."""
    for path in ("~/no-such-digestbot-folder", "/no/such/place/**/*.txt"):
        target = folder_file(tmp_path, path)
        result = run("subscriptions", "validate", str(target))
        assert result.exit_code == 1
        missing = Path(path.split("*")[0].rstrip("/")).expanduser()
        assert f"{target}:4:5: sources[1].path: folder {missing} does not exist" in result.stderr


def test_a_relative_path_is_taken_from_the_subscriptions_files_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`path: papers` means the folder beside the subscriptions file, whatever the working
    directory (a daemon under systemd runs elsewhere); `~` is the home folder."""
    config = tmp_path / "config"
    (config / "papers").mkdir(parents=True)
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    loaded = load_subscriptions(folder_file(config, "papers/*.txt"))
    assert loaded.sources[1].spec().name == f"folder:{config / 'papers'}/*.txt"
    assert loaded.sources[1].effective_schedule() == "*/5 * * * *"
    monkeypatch.setenv("HOME", str(config))
    loaded = load_subscriptions(folder_file(elsewhere, "~/papers"))
    assert loaded.sources[1].spec().name == f"folder:{config / 'papers'}"


def test_a_folder_source_needs_a_path_and_others_take_none(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """`kind: folder` without `path`, or `path` on another kind, is a located error."""
    target = tmp_path / "subscriptions.yaml"
    target.write_text("sources:\n  - kind: folder\n  - kind: hf\n    path: .\n" + READER)
    result = run("subscriptions", "validate", str(target))
    assert result.exit_code == 1
    assert result.stderr.count("a folder source, and only a folder source, needs `path`") == 2


def test_ingest_all_reads_a_folder_source_and_reports_each_file(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """`ingest --all` ingests each file of a folder source with its own line, prints a bad
    file as an error with its name, records the run for `status`, and exits 1; run again,
    both files are unchanged and nothing is reported again."""
    papers = tmp_path / "papers"
    papers.mkdir()
    shutil.copyfile(LISTING_000, papers / "page.txt")
    (papers / "broken.json").write_text("{not json")
    for name in ("page.txt", "broken.json"):
        os.utime(papers / name, (0, 0))
    target = tmp_path / "subscriptions.yaml"
    target.write_text("sources:\n  - kind: folder\n    path: papers\n" + READER)
    monkeypatch.setenv("DIGESTBOT_SUBSCRIPTIONS", str(target))
    first = run("ingest", "--all")
    assert first.exit_code == 1
    assert f"{papers / 'page.txt'}: 39 new, 0 already known, 0 skipped" in first.stdout
    assert f"folder:{papers}: 1 file ingested, 0 unchanged, 1 failed; 39 new papers" in (
        first.stdout
    )
    assert f"Error: {papers / 'broken.json'}: " in first.stderr
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    run_row = ledger.source_runs(engine)[f"folder:{papers}"]
    assert run_row.failures == 1 and "broken.json" in (run_row.error or "")
    second = run("ingest", "--all")
    assert second.exit_code == 0 and second.stderr == ""
    assert "0 files ingested, 2 unchanged, 0 failed; 0 new papers" in second.stdout
    run_row = ledger.source_runs(engine)[f"folder:{papers}"]
    engine.dispose()
    assert run_row.failures == 0 and run_row.error is None
    assert run_row.last_run_at <= datetime.now(UTC)


def test_a_missing_folder_fails_its_source_alone_in_ingest_all(
    run, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:  # type: ignore[no-untyped-def]
    """A folder not there yet is one error line and a failed run for that source; the
    next source is still ingested, and the exit status is 1."""
    papers = tmp_path / "papers"
    papers.mkdir()
    shutil.copyfile(LISTING_000, papers / "page.txt")
    os.utime(papers / "page.txt", (0, 0))
    target = tmp_path / "subscriptions.yaml"
    sources = "  - kind: folder\n    path: later\n  - kind: folder\n    path: papers\n"
    target.write_text("sources:\n" + sources + READER)
    monkeypatch.setenv("DIGESTBOT_SUBSCRIPTIONS", str(target))
    result = run("ingest", "--all")
    assert result.exit_code == 1
    assert result.stderr.startswith(f"Error: {tmp_path / 'later'}: no such folder")
    assert f"folder:{papers}: 1 file ingested" in result.stdout
    engine = make_engine(f"sqlite:///{tmp_path / 'digestbot.db'}")
    assert ledger.source_runs(engine)[f"folder:{tmp_path / 'later'}"].failures == 1
    engine.dispose()
