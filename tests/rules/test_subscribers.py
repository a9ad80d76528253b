"""Tests for syncing subscriptions into the database."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import Engine

from digestbot import service
from digestbot.rules.subscribers import (
    Suppressed,
    active_subscribers,
    listed_but_suppressed,
    sync_subscriptions,
)
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


def test_a_suppressed_address_the_file_lists_stays_inactive_through_syncs(
    engine: Engine, clock: datetime
) -> None:
    """Sync never reactivates an address that unsubscribed; it reports it instead of counting
    it as reactivated, and still keeps its rules up to date for a later resubscribe."""
    sync_subscriptions(engine, spec("a@x.org=gan", "b@x.org=vit"), now=clock)
    service.unsubscribe(engine, "b@x.org", now=clock, via="link")
    result = sync_subscriptions(engine, spec("a@x.org=gan", "b@x.org=diffusion"), now=clock)
    assert (result.reactivated, result.changed, result.unchanged) == ([], [], ["a@x.org"])
    assert [(s.email, s.via) for s in result.suppressed] == [("b@x.org", "link")]
    assert [s.email for s in active_subscribers(engine)] == ["a@x.org"]
    assert service.resubscribe(engine, "b@x.org", now=clock)
    assert active_subscribers(engine, ["b@x.org"])[0].rules[0].any == ("diffusion",)


def test_a_suppressed_address_new_to_the_file_is_stored_inactive(
    engine: Engine, clock: datetime
) -> None:
    """An address suppressed before any file listed it is never added as an active reader."""
    service.unsubscribe(engine, "c@x.org", now=clock, via="operator")
    result = sync_subscriptions(engine, spec("c@x.org=gan"), now=clock)
    assert result.added == [] and [s.email for s in result.suppressed] == ["c@x.org"]
    assert active_subscribers(engine) == []
    assert listed_but_suppressed(engine, spec("c@x.org=gan")) == result.suppressed


def test_the_suppression_warning_says_when_how_and_what_to_do(clock: datetime) -> None:
    """The warning names the day, whether the link or the operator did it, and both remedies."""
    by_link = Suppressed("x@y.org", clock, "link").warning()
    assert by_link == (
        "x@y.org unsubscribed on 2026-11-24 via the link; remove them from the file or run "
        "digestbot resubscribe x@y.org"
    )
    assert "on 2026-11-24 by the operator;" in Suppressed("x@y.org", clock, "operator").warning()
