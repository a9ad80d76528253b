"""Tests that the labelled relevance set (tests/fixtures/relevance) is whole and usable."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

from ruamel.yaml import YAML

from digestbot.rules.subscriptions import parse_subscriptions

RELEVANCE = Path(__file__).resolve().parent.parent / "fixtures" / "relevance"


def test_every_paper_has_one_label_per_topic_and_every_seed_is_relevant() -> None:
    """The set's own check passes: one row per stored paper and topic, seeds relevant."""
    spec = importlib.util.spec_from_file_location("relevance_check", RELEVANCE / "check.py")
    assert spec is not None and spec.loader is not None
    check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(check)
    assert check.main() == 0


def test_each_topics_keyword_rule_is_a_rule_digestbot_accepts() -> None:
    """The keyword baselines are written in the rule language and validate."""
    topics = YAML(typ="safe").load((RELEVANCE / "topics.yaml").read_text(encoding="utf-8"))
    for topic in topics["topics"]:
        rule = json.dumps({"name": topic["id"], **topic["keyword_rule"]})
        text = f"subscribers:\n  - email: reader@lab.example\n    rules: [{rule}]\n"
        parsed = parse_subscriptions(text, source=f"topic {topic['id']}")
        (made,) = parsed.rules_of(parsed.subscribers[0])
        assert made.name == topic["id"] and made.any
