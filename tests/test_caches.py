"""Tests for the module-level caches: each is an lru_cache with a finite bound, since they
live as long as the process (the daemon's, for months)."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

import digestbot


def module_caches() -> list[Any]:
    """Every function of a digestbot module that has a cache (functools' cache_info)."""
    found = []
    for module in pkgutil.walk_packages(digestbot.__path__, "digestbot."):
        if module.name == "digestbot.__main__":
            continue
        for value in vars(importlib.import_module(module.name)).values():
            if hasattr(value, "cache_info") and value.__module__ == module.name:
                found.append(value)
    return found


def test_every_module_level_cache_has_a_finite_bound() -> None:
    """An unbounded cache (functools.cache, maxsize=None) would grow for the daemon's life."""
    caches = module_caches()
    assert len(caches) >= 8, "the render and matching caches are found"
    unbounded = [f"{f.__module__}.{f.__name__}" for f in caches if f.cache_info().maxsize is None]
    assert unbounded == []
