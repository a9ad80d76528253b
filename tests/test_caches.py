"""Tests for the module-level caches: each is an lru_cache with a finite bound, since they
live as long as the process (the daemon's, for months)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import pytest

import digestbot
from digestbot.compose import present, prestyle
from digestbot.delivery import pipeline
from digestbot.rules import highlight, matching

CACHES: list[Any] = [
    pipeline._environment,
    present.single_spaced,
    present.wrap,
    prestyle.style_of,
    matching.parse_term,
    highlight._tokens,
    highlight._term_pattern,
    highlight._term_spans,
]


@pytest.mark.parametrize("cached", CACHES, ids=lambda f: f"{f.__module__}.{f.__name__}")
def test_each_listed_cache_has_a_finite_bound(cached: Any) -> None:
    """An unbounded cache (functools.cache, maxsize=None) would grow for the daemon's life."""
    assert cached.cache_info().maxsize is not None


def test_the_list_names_every_module_level_cache() -> None:
    """Every function with a cache_info in a digestbot module is in CACHES (so it is checked)."""
    found = set()
    for module in pkgutil.walk_packages(digestbot.__path__, "digestbot."):
        if module.name == "digestbot.__main__":
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if hasattr(value, "cache_info") and value.__module__.startswith("digestbot."):
                found.add(value)
    assert found == set(CACHES)
