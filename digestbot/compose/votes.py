"""Compose stage (pure): a paper's feedback links, "more like this" and "not relevant"."""

from __future__ import annotations

from dataclasses import dataclass

from digestbot.ingest.links import web_url


@dataclass(frozen=True)
class VoteLinks:
    """The two links under a paper; the delivery stage signs them for one reader and digest
    (DIGESTBOT_PUBLIC_URL), so composing stays free of keys."""

    up: str  # "more like this"
    down: str  # "not relevant"

    def __post_init__(self) -> None:
        # Only http(s) URLs ever reach an href, whoever built the links.
        if not (web_url(self.up) and web_url(self.down)):
            raise ValueError(f"vote links must be http(s) URLs: {self.up!r}, {self.down!r}")
