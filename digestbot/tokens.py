"""Shared: the signed tokens in readers' links (unsubscribe, votes on papers), made and read
with the one DIGESTBOT_SECRET_KEY.

A token names the subscriber by id, never by address, and is signed (itsdangerous, HMAC):
without the key nobody can make one, and a changed or truncated one does not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from itsdangerous import BadSignature, URLSafeSerializer

Vote = Literal["up", "down"]
VOTES: tuple[Vote, ...] = ("up", "down")
_UNSUBSCRIBE = "digestbot.unsubscribe"
_VOTE = "digestbot.vote"


@dataclass(frozen=True)
class VoteToken:
    """What a vote link says: this subscriber thinks this paper is (not) for them."""

    subscriber_id: int
    paper_id: str
    vote: Vote
    digest: str  # the period key of the digest the link was in


def unsubscribe_token(secret: str, subscriber_id: int) -> str:
    """The token of `subscriber_id`'s unsubscribe link; it never expires."""
    return str(URLSafeSerializer(secret, salt=_UNSUBSCRIBE).dumps(subscriber_id))


def read_unsubscribe(secret: str, token: str) -> int | None:
    """The subscriber an unsubscribe token names, or None if it is not one of ours."""
    try:
        value = URLSafeSerializer(secret, salt=_UNSUBSCRIBE).loads(token)
    except BadSignature:
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def vote_token(secret: str, subscriber_id: int, paper_id: str, vote: Vote, digest: str) -> str:
    """The token of a "more like this" (`up`) or "not relevant" (`down`) link in the digest
    of period `digest`."""
    payload = [subscriber_id, paper_id, vote, digest]
    return str(URLSafeSerializer(secret, salt=_VOTE).dumps(payload))


def read_vote(secret: str, token: str) -> VoteToken | None:
    """What a vote token says, or None if it is not one of ours."""
    try:
        value = URLSafeSerializer(secret, salt=_VOTE).loads(token)
    except BadSignature:
        return None
    match value:
        case [int() as sid, str() as paper, "up" | "down" as vote, str() as digest] if not (
            isinstance(sid, bool)
        ):
            return VoteToken(sid, paper, vote, digest)
    return None


def unsubscribe_url(public_url: str, secret: str, subscriber_id: int) -> str:
    """`{public_url}/u/{token}`: the reader's one-click unsubscribe link."""
    return f"{public_url.rstrip('/')}/u/{unsubscribe_token(secret, subscriber_id)}"


def vote_url(
    public_url: str, secret: str, subscriber_id: int, paper_id: str, vote: Vote, digest: str
) -> str:
    """`{public_url}/v/{token}`: a link that asks the reader to confirm a vote on a paper."""
    token = vote_token(secret, subscriber_id, paper_id, vote, digest)
    return f"{public_url.rstrip('/')}/v/{token}"
