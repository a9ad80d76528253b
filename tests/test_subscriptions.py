"""Tests for reading and validating the subscriptions file."""

from __future__ import annotations

from pathlib import Path

import pytest

from digestbot.errors import SubscriptionsError
from digestbot.resources import bundled_path
from digestbot.subscriptions import load_subscriptions, parse_subscriptions

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
    """The error names the path and points at the example file."""
    with pytest.raises(SubscriptionsError, match=r"subscriptions\.example\.yaml") as caught:
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
    good = parse_subscriptions(
        "sources:\n  - kind: arxiv\n    categories: [cs.CL]\n" + GOOD, source="s"
    )
    assert good.sources[0].spec().name == "arxiv:cs.CL"
