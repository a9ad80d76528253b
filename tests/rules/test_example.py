"""Tests that the example subscriptions validate and that each feature in them matters."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pytest

from digestbot import service
from digestbot.ingest.load import ingest_path
from digestbot.resources import bundled_path
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions
from digestbot.settings import Settings
from digestbot.store.engine import make_engine

EXAMPLE = bundled_path("subscriptions.example.yaml").read_text(encoding="utf-8")
Plan = dict[str, list[str]]


def dry_run(text: str, tmp_path: Path, clock: datetime, name: str) -> Plan:
    """The dry-run plan (email -> paper ids) for the bundled samples under `text`."""
    settings = Settings(database_url=f"sqlite:///{tmp_path / name}.db", _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    for sample in ("sample_listing.txt", "sample_daily_papers.json"):
        ingest_path(engine, bundled_path(sample), now=clock)
    sync_subscriptions(engine, parse_subscriptions(text, source="example"), now=clock)
    plan = service.plan_digests(engine, settings, now=clock)
    engine.dispose()
    return {d.subscriber.email: [i.paper.id for i in d.items] for d in plan}


@pytest.fixture
def baseline(tmp_path: Path, clock: datetime) -> Plan:
    return dry_run(EXAMPLE, tmp_path, clock, "baseline")


def test_the_example_validates_and_gives_everyone_papers(baseline: Plan) -> None:
    """Every example subscriber gets something from the bundled samples."""
    assert set(baseline) == {"alice@example.org", "bob@example.org", "carol@example.org"}
    assert all(baseline.values())


FEATURES = {
    "topics": ("        topics: [efficient-attention]\n        all:", "        any:"),
    "topic none": ('    none: ["survey"]\n  diffusion:', "  diffusion:"),
    "all": ('        all: ["transformer"]\n', ""),
    "none": ('        none: ["fMRI"]\n', ""),
    "authors": ('        authors: ["A. Ravichander"]', '        authors: ["Q. Nobody"]'),
    "prefix": ('any: ["pretrain*"]', 'any: ["pretrain"]'),
    "fields": ("        fields: [title]                # only in titles\n", ""),
    "fuzzy": ("        fuzzy: 85\n", ""),
    "min_upvotes": ("        min_upvotes: 2\n", ""),
    "max_papers": ("    max_papers: 3                      # only his three best matches\n", ""),
    "default max_papers": ("  max_papers: 25 ", "  max_papers: 2 "),
}


@pytest.mark.parametrize("feature", FEATURES)
def test_each_feature_of_the_example_changes_the_dry_run(
    feature: str, baseline: Plan, tmp_path: Path, clock: datetime
) -> None:
    """Taking one feature out of the example changes who gets which papers."""
    old, new = FEATURES[feature]
    assert old in EXAMPLE, f"the example no longer shows {feature}"
    changed = dry_run(EXAMPLE.replace(old, new, 1), tmp_path, clock, "changed")
    assert changed != baseline
