"""Tests for syncing subscriptions into the database."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from digestbot.rules.subscribers import active_subscribers, sync_subscriptions
from digestbot.rules.subscriptions import parse_subscriptions


def spec(*entries: str):  # type: ignore[no-untyped-def]
    body = "".join(
        f"  - email: {e}\n    rules:\n      - any: [{terms}]\n"
        for e, terms in (entry.split("=") for entry in entries)
    )
    return parse_subscriptions("subscribers:\n" + body, source="s.yaml")


def test_sync_adds_new_subscribers_with_their_rules(engine: Engine, clock: datetime) -> None:
    """A first sync stores every subscriber and rule."""
    result = sync_subscriptions(engine, spec("a@x.org=gan", "b@x.org=vit"), now=clock)
    assert result.added == ["a@x.org", "b@x.org"]
    subs = active_subscribers(engine)
    assert [(s.email, s.rules[0].any) for s in subs] == [
        ("a@x.org", ("gan",)),
        ("b@x.org", ("vit",)),
    ]


def test_sync_replaces_changed_rules_and_leaves_others(engine: Engine, clock: datetime) -> None:
    """Only subscribers whose rules changed are touched."""
    sync_subscriptions(engine, spec("a@x.org=gan", "b@x.org=vit"), now=clock)
    result = sync_subscriptions(engine, spec("a@x.org=diffusion", "b@x.org=vit"), now=clock)
    assert (result.changed, result.unchanged) == (["a@x.org"], ["b@x.org"])
    assert active_subscribers(engine, ["a@x.org"])[0].rules[0].any == ("diffusion",)


def test_removed_subscribers_are_deactivated_and_come_back(engine: Engine, clock: datetime) -> None:
    """Removing keeps the row (and its history); re-adding reactivates the same row."""
    sync_subscriptions(engine, spec("a@x.org=gan", "b@x.org=vit"), now=clock)
    (before,) = active_subscribers(engine, ["b@x.org"])
    gone = sync_subscriptions(engine, spec("a@x.org=gan"), now=clock + timedelta(hours=1))
    assert gone.deactivated == ["b@x.org"]
    assert [s.email for s in active_subscribers(engine)] == ["a@x.org"]
    back = sync_subscriptions(engine, spec("a@x.org=gan", "b@x.org=vit"), now=clock)
    assert back.reactivated == ["b@x.org"]
    assert active_subscribers(engine, ["b@x.org"])[0].id == before.id
