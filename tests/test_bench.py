"""Tests that the delivery benchmark's variants still match the code they take a trick out of,
and that the scale benchmark runs end to end at a tiny size."""

from __future__ import annotations

import os
import py_compile
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from variants import VARIANTS, patched_copy

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_patches_the_code_it_names_into_valid_python(
    name: str, tmp_path: Path
) -> None:
    """Every edit of the variant finds its text, and every file it edits still compiles."""
    copy = patched_copy(name, tmp_path)
    for file, _, _ in VARIANTS[name]:
        py_compile.compile(str(copy / file), doraise=True)


@pytest.mark.slow
def test_the_scale_benchmark_works_a_tiny_round_and_prints_its_table() -> None:
    """bench_scale starts its cluster, works rounds with 1 and 2 workers and prints the table."""
    if not (list(Path("/usr/lib/postgresql").glob("*/bin/initdb")) or shutil.which("initdb")):
        if os.environ.get("CI"):
            pytest.fail("CI is set but PostgreSQL (initdb, pg_ctl) is not installed")
        pytest.skip("PostgreSQL (initdb, pg_ctl) is not installed")
    done = subprocess.run(
        [sys.executable, str(BENCH / "bench_scale.py"), "--readers", "200", "--papers", "30",
         "--workers", "1,2", "--slice-size", "50", "--scale-readers", "400"],
        capture_output=True, text=True, timeout=280, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = [line for line in done.stdout.splitlines() if line.startswith(("| 1 |", "| 2 |"))]
    assert len(rows) == 2, done.stdout
    assert all(int(row.split("|")[2]) > 0 for row in rows), done.stdout  # digests sent
    assert "worker CPU per digest, 2 workers / 1" in done.stdout
    assert "200 readers" in done.stdout and "400 readers" in done.stdout
