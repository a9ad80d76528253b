"""Tests that the delivery benchmark's variants still match the code they take a trick out of."""

from __future__ import annotations

import py_compile
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))

from variants import VARIANTS, patched_copy


@pytest.mark.parametrize("name", sorted(VARIANTS))
def test_each_variant_patches_the_code_it_names_into_valid_python(
    name: str, tmp_path: Path
) -> None:
    """Every edit of the variant finds its text, and every file it edits still compiles."""
    copy = patched_copy(name, tmp_path)
    for file, _, _ in VARIANTS[name]:
        py_compile.compile(str(copy / file), doraise=True)
