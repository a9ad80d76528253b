"""Tests for deciding what each subscriber's digest holds (pure)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from digestbot.models import Paper, Rule, Subscriber
from digestbot.rules.digests import build_digest, build_digests, window_start

NOW = datetime(2026, 11, 24, 8, 0, tzinfo=UTC)
ALICE = Subscriber(1, "alice@example.org", "Alice", (Rule("r", any=("diffusion",)),), max_papers=2)


def paper(pid: str, title: str, seen: datetime, upvotes: int | None = None) -> Paper:
    return Paper(id=pid, title=title, abstract="", first_seen=seen, upvotes=upvotes)


def digest(papers: list[Paper], since: datetime, sent: set[str] | None = None):  # type: ignore[no-untyped-def]
    return build_digest(
        ALICE, papers, since=since, already_sent=sent or set(), now=NOW, period_key="k"
    )


def test_a_first_digest_looks_back_the_configured_hours() -> None:
    """Without a previous digest the window opens `first_hours` before now."""
    assert window_start(None, NOW, 24) == NOW - timedelta(hours=24)


def test_a_first_digest_reaches_back_to_when_the_subscriber_joined() -> None:
    """A newcomer whose first digest comes days after joining gets every paper since joining."""
    joined = NOW - timedelta(days=3)
    assert window_start(None, NOW, 24, joined) == joined
    assert window_start(None, NOW, 24, NOW - timedelta(hours=1)) == NOW - timedelta(hours=24)


def test_later_digests_start_where_the_previous_one_was_decided() -> None:
    """After a digest the window opens at that digest's decision time."""
    previous = NOW - timedelta(hours=3)
    assert window_start(previous, NOW, 24) == previous


def test_it_keeps_only_papers_first_seen_inside_the_window() -> None:
    """Papers first seen before the window are old news, whatever their publication date."""
    since = NOW - timedelta(hours=24)
    papers = [
        paper("old", "Diffusion old", since - timedelta(minutes=1)),
        paper("new", "Diffusion new", since + timedelta(minutes=1)),
    ]
    assert [i.paper.id for i in digest(papers, since).items] == ["new"]


def test_it_skips_papers_already_sent() -> None:
    """A paper already sent to the subscriber never appears again."""
    papers = [paper("a", "Diffusion A", NOW), paper("b", "Diffusion B", NOW)]
    assert [i.paper.id for i in digest(papers, NOW - timedelta(days=1), {"a"}).items] == ["b"]


def test_it_ranks_by_score_then_upvotes_and_caps_at_max_papers() -> None:
    """Best first, capped at max_papers, with the rest counted as dropped."""
    since = NOW - timedelta(days=1)
    papers = [
        Paper("low", "Graph models", "with diffusion", NOW, upvotes=90),
        paper("mid", "Diffusion", NOW, upvotes=1),
        paper("top", "Diffusion", NOW, upvotes=5),
    ]
    result = digest(papers, since)
    assert [i.paper.id for i in result.items] == ["top", "mid"]
    assert result.left_out == ("low",) and result.dropped == 1


def test_papers_carried_from_the_last_digest_are_ranked_with_the_new_ones() -> None:
    """A carried paper first seen before the window competes with the new papers; one
    already sent does not come back."""
    since = NOW - timedelta(hours=3)
    papers = [
        paper("new", "Diffusion", NOW, upvotes=1),
        paper("carried", "Diffusion", since - timedelta(days=2), upvotes=9),
        paper("sent", "Diffusion", since - timedelta(days=2), upvotes=99),
        paper("old", "Diffusion", since - timedelta(days=2), upvotes=50),
    ]
    result = build_digest(
        ALICE,
        papers,
        since=since,
        already_sent={"sent"},
        now=NOW,
        period_key="k",
        carried=("carried", "sent"),
    )
    assert [i.paper.id for i in result.items] == ["carried", "new"]
    assert result.left_out == ()


def test_unmatched_papers_are_left_out() -> None:
    """Only papers matching a rule are in the digest."""
    assert digest([paper("x", "Graph models", NOW)], NOW - timedelta(days=1)).items == ()


def test_a_digest_that_cannot_be_decided_is_marked_and_the_others_go_on() -> None:
    """A subscriber whose rule breaks matching gets a digest saying why; the next still gets
    theirs."""
    now = datetime(2026, 1, 1, tzinfo=UTC)
    paper = Paper("p1", "Transformers rock", "About transformers.", now)
    fine = Rule("r", any=("transformers",))
    broken = Rule("r", any=("transformers",), fields=("no-such-field",))
    subs = [
        Subscriber(n, f"s{n}@example.org", "", (rule,)) for n, rule in enumerate((broken, fine))
    ]
    since = dict.fromkeys((s.id for s in subs), now - timedelta(days=1))
    digests = list(
        build_digests(subs, [paper], since=since, already_sent={}, now=now, period_key="k")
    )
    assert [(len(d.items), d.problem is not None) for d in digests] == [(0, True), (1, False)]
    assert "no-such-field" in (digests[0].problem or "")
