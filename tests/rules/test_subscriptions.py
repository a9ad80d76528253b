"""Tests for reading and validating the subscriptions file."""

from __future__ import annotations

from pathlib import Path

import pytest

from digestbot.errors import SubscriptionsError
from digestbot.resources import bundled_path
from digestbot.rules.subscriptions import load_subscriptions, parse_subscriptions

GOOD = """\
subscribers:
  - email: Alice@Example.ORG
    name: Alice
    rules:
      - any: [diffusion, "flow matching"]
        none: [survey]
"""


def problems(text: str) -> list[str]:
    with pytest.raises(SubscriptionsError) as caught:
        parse_subscriptions(text, source="subs.yaml")
    return caught.value.problems


def test_the_example_file_validates() -> None:
    """The bundled example is a valid subscriptions file."""
    spec = load_subscriptions(bundled_path("subscriptions.example.yaml"))
    assert len(spec.subscribers) >= 3


def test_addresses_are_normalised_with_the_domain_lower_cased() -> None:
    """The domain is lower-cased; the local part is kept as written."""
    spec = parse_subscriptions(GOOD, source="subs.yaml")
    assert spec.subscribers[0].email == "Alice@example.org"
    assert spec.subscribers[0].rules[0].display_name() == "diffusion, flow matching"


def test_an_invalid_address_names_file_line_column_and_field() -> None:
    """A bad email is reported as file:line:column: path: message."""
    (problem,) = problems(GOOD.replace("Alice@Example.ORG", "alice-at-example"))
    assert problem.startswith("subs.yaml:2:5: subscribers[0].email: ")
    assert "not a valid email address" in problem


def test_an_unknown_key_is_an_error_at_its_line() -> None:
    """Misspelt keys are rejected, not ignored."""
    (problem,) = problems(GOOD.replace("none:", "nope:"))
    assert (
        problem == "subs.yaml:6:9: subscribers[0].rules[0].nope: unknown key (check its spelling)"
    )


def test_a_rule_with_only_none_is_an_error() -> None:
    """A rule needs a positive condition; `none` alone matches nothing."""
    (problem,) = problems(GOOD.replace('any: [diffusion, "flow matching"]', "name: x"))
    assert problem.startswith("subs.yaml:5:9: subscribers[0].rules[0]: needs a positive condition")


def test_every_problem_is_reported_at_once() -> None:
    """Several mistakes give several lines, each with its own position."""
    text = GOOD.replace("Alice@Example.ORG", "nope") + "  - email: bob@example.org\n    rules: []\n"
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["subscribers[0].email", "subscribers[1].rules"]


def test_duplicate_subscribers_are_rejected_case_insensitively_in_the_domain() -> None:
    """The same address twice, domain case aside, is an error at the second one."""
    text = GOOD + "  - email: Alice@example.org\n    rules:\n      - any: [gan]\n"
    (problem,) = problems(text)
    assert problem.startswith("subs.yaml:7:5: subscribers[1].email: Alice@example.org is already")


def test_a_yaml_syntax_error_names_its_line() -> None:
    """Broken YAML is one line with the position of the problem."""
    (problem,) = problems("subscribers:\n  - email: [unclosed\n")
    assert problem.startswith("subs.yaml:3:1: YAML syntax:")


def test_duplicate_keys_are_errors() -> None:
    """YAML 1.2 forbids a key twice in one mapping; so do we."""
    (problem,) = problems("subscribers: []\nsubscribers: []\n")
    assert problem.startswith("subs.yaml:2:1: YAML syntax:")
    assert "duplicate key" in problem


def test_a_missing_file_says_how_to_create_one(tmp_path: Path) -> None:
    """The error names the path and points at `digestbot init`, which writes one wherever
    digestbot was installed from."""
    with pytest.raises(SubscriptionsError, match=r"run `digestbot init`") as caught:
        load_subscriptions(tmp_path / "subscriptions.yaml")
    assert caught.value.problems == [f"{tmp_path / 'subscriptions.yaml'}: no such file"]


def test_a_name_with_a_line_break_is_rejected() -> None:
    """Names end up in headers and greetings, so they must be one printable line."""
    (problem,) = problems(GOOD.replace("name: Alice", 'name: "Eve\\r\\nBcc: x@evil.example"'))
    assert problem.startswith("subs.yaml:3:5: subscribers[0].name: must be one line")


def test_a_sources_section_is_validated() -> None:
    """Sources need what their kind fetches: categories, a query or an http(s) URL."""
    text = (
        "sources:\n  - kind: hf\n  - kind: arxiv\n  - kind: feed\n    url: javascript:alert(1)\n"
        "  - kind: rss\n" + GOOD
    )
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == ["sources[1]", "sources[2]", "sources[3].kind"]
    assert "needs `categories`" in found[0]
    bad_cron = "sources:\n  - kind: hf\n    schedule: '61 * * * *'\n" + GOOD
    (problem,) = problems(bad_cron)
    assert problem.startswith("subs.yaml:3:5: sources[0].schedule: '61 * * * *' is not a cron")
    good = parse_subscriptions(
        "sources:\n  - kind: arxiv\n    categories: [cs.CL]\n" + GOOD, source="s"
    )
    assert good.sources[0].spec().name == "arxiv:cs.CL"
    assert good.sources[0].effective_schedule() == "30 5 * * mon-fri"


FULL = """\
defaults:
  timezone: Europe/Berlin
  send_at: "08:00"
  frequency: daily
  max_papers: 25
topics:
  efficient-attention:
    any: ["linear attention", "sparse attention"]
    none: [survey]
subscribers:
  - email: alice@example.org
    timezone: America/New_York
    rules:
      - name: Efficient transformers
        topics: [efficient-attention]
        all: [transformer]
      - authors: ["Yann LeCun"]
        mode: alert
      - any: ["quantiz*"]
        fields: [title]
        min_upvotes: 3
        fuzzy: 90
"""


def test_the_full_format_parses_and_resolves_topics_and_defaults() -> None:
    """Topics become rule bodies inside the rules that name them; defaults are inherited."""
    spec = parse_subscriptions(FULL, source="subs.yaml")
    alice = spec.subscribers[0]
    rules = spec.rules_of(alice)
    assert rules[0].topics[0].name == "efficient-attention"
    assert rules[0].topics[0].none == ("survey",)
    assert rules[1].mode == "alert" and rules[1].name == "Yann LeCun"
    assert (rules[2].fields, rules[2].min_upvotes, rules[2].fuzzy) == (("title",), 3, 90)
    assert alice.timezone == "America/New_York" and alice.send_at is None
    assert spec.defaults.send_at == "08:00"


def test_yaml_1_2_keeps_times_and_no_as_strings() -> None:
    """Unquoted 12:30 is a time string, not sexagesimal 750; NO is a word, not false."""
    text = FULL.replace('send_at: "08:00"', "send_at: 12:30").replace(
        "all: [transformer]", "all: [transformer, NO]"
    )
    spec = parse_subscriptions(text, source="subs.yaml")
    assert spec.defaults.send_at == "12:30"
    assert spec.subscribers[0].rules[0].all == ["transformer", "NO"]


@pytest.mark.parametrize(
    ("old", "new", "where", "message"),
    [
        (
            "timezone: America/New_York",
            "timezone: Mars/Olympus",
            "subscribers[0].timezone",
            "unknown timezone 'Mars/Olympus'",
        ),
        ('send_at: "08:00"', 'send_at: "8am"', "defaults.send_at", "not a time of day"),
        (
            "frequency: daily",
            "frequency: weekly:funday",
            "defaults.frequency",
            "not daily, weekdays or weekly",
        ),
        (
            "topics: [efficient-attention]",
            "topics: [efficient]",
            "subscribers[0].rules[0].topics[0]",
            "unknown topic 'efficient' (efficient-attention)",
        ),
        (
            "fields: [title]",
            "fields: [body]",
            "subscribers[0].rules[2].fields[0]",
            "Input should be",
        ),
        ("fuzzy: 90", "fuzzy: 101", "subscribers[0].rules[2].fuzzy", "less than or equal to 100"),
        ("mode: alert", "mode: loud", "subscribers[0].rules[1].mode", "Input should be"),
    ],
    ids=["timezone", "time", "frequency", "topic", "fields", "fuzzy", "mode"],
)
def test_each_field_is_checked_with_its_path(old: str, new: str, where: str, message: str) -> None:
    """A wrong value is reported at its own path and line."""
    (problem,) = problems(FULL.replace(old, new))
    assert f": {where}: " in problem
    assert message in problem


def test_a_topic_needs_a_positive_condition_too() -> None:
    """A topic with only `none` is as empty as such a rule."""
    (problem,) = problems(
        FULL.replace('any: ["linear attention", "sparse attention"]', "fuzzy: 90")
    )
    assert problem.startswith("subs.yaml:7:3: topics.efficient-attention: needs a positive")


def test_all_problems_come_at_once_in_file_order_of_fields() -> None:
    """Four mistakes in different places give four lines, each with its position."""
    text = (
        FULL.replace("timezone: Europe/Berlin", "timezone: Nowhere")
        .replace("alice@example.org", "alice")
        .replace("min_upvotes: 3", "min_upvotes: -1")
        .replace("topics: [efficient-attention]", "topics: [nope]")
    )
    found = problems(text)
    assert [p.split(": ")[1] for p in found] == [
        "defaults.timezone",
        "subscribers[0].email",
        "subscribers[0].rules[0].topics[0]",
        "subscribers[0].rules[2].min_upvotes",
    ]
    assert found[0].startswith("subs.yaml:2:3:")


def laughs(levels: int) -> str:
    """A "billion laughs" document: each level is a list of nine aliases of the one before."""
    lines = ['l0: &l0 ["laugh out loud", "laugh out loud", "laugh out loud"]']
    for n in range(1, levels + 1):
        lines.append(f"l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]")
    return "\n".join(lines) + "\n"


def test_it_refuses_a_yaml_alias_bomb() -> None:
    """Aliases that would expand to millions of values are one error at the alias's line."""
    text = laughs(6)
    assert len(text) < 500
    (problem,) = problems(text)
    assert problem.startswith("subs.yaml:6:")
    assert "aliases expand to over 1,000,000 nodes and characters" in problem


def test_modest_anchors_and_aliases_still_work() -> None:
    """A rule anchored once and reused by a second subscriber parses as written out."""
    text = GOOD.replace("rules:", "rules: &shared", 1)
    text += "  - email: bob@example.org\n    rules: *shared\n"
    parsed = parse_subscriptions(text, source="subs.yaml")
    alice, bob = parsed.subscribers
    assert bob.rules == alice.rules and bob.rules[0].any == ["diffusion", "flow matching"]


def test_it_refuses_a_subscriptions_file_over_the_size_limit(tmp_path: Path) -> None:
    """A file over 16 MB is refused by its size, without parsing it."""
    path = tmp_path / "subscriptions.yaml"
    path.write_text(GOOD + ("# padding " + "x" * 1000 + "\n") * 17_000)
    with pytest.raises(SubscriptionsError) as caught:
        load_subscriptions(path)
    assert caught.value.problems == [f"{path}: larger than 16 MB"]
