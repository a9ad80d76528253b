"""Tests for the signed tokens in readers' links (shared)."""

from __future__ import annotations

from digestbot.tokens import (
    VoteToken,
    read_unsubscribe,
    read_vote,
    unsubscribe_token,
    unsubscribe_url,
    vote_token,
)

KEY = "a-key-of-thirty-two-characters!!"


def test_an_unsubscribe_token_reads_back_as_its_subscriber() -> None:
    """The token names the subscriber by id, and the link is under /u/ of the public URL."""
    assert read_unsubscribe(KEY, unsubscribe_token(KEY, 42)) == 42
    assert unsubscribe_url("https://p.lab.example/", KEY, 42).startswith("https://p.lab.example/u/")


def test_forged_truncated_or_other_key_tokens_do_not_read() -> None:
    """A changed signature, a cut token, another key or another id's payload read as None."""
    token = unsubscribe_token(KEY, 42)
    payload, signature = token.split(".")
    assert read_unsubscribe(KEY, f"{payload}.{signature[:-1]}x") is None
    assert read_unsubscribe(KEY, token[:-3]) is None
    assert read_unsubscribe("another-key-another-key-another", token) is None
    other = unsubscribe_token(KEY, 43).split(".")[0]
    assert read_unsubscribe(KEY, f"{other}.{signature}") is None
    assert read_unsubscribe(KEY, "") is None and read_unsubscribe(KEY, "garbage") is None


def test_a_vote_token_is_no_unsubscribe_token_and_back() -> None:
    """Each kind of link signs under its own salt, so one cannot stand in for the other."""
    vote = vote_token(KEY, 42, "2501.08292", "up", "daily:2026-12-04")
    assert read_vote(KEY, vote) == VoteToken(42, "2501.08292", "up", "daily:2026-12-04")
    assert read_unsubscribe(KEY, vote) is None
    assert read_vote(KEY, unsubscribe_token(KEY, 42)) is None
