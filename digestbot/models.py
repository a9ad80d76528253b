"""Values passed between stages: plain frozen dataclasses, no I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime


@dataclass(frozen=True)
class ListedPaper:
    """A paper as one listing shows it, before digestbot has seen it."""

    title: str
    abstract: str
    published: date | None = None
    upvotes: int | None = None
    author_count: int | None = None
    organisation: str | None = None
    authors: tuple[str, ...] = ()
    arxiv_id: str | None = None
    categories: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()  # (kind, url): hf, abs, pdf, code, project, page
    comments: int | None = None
    keywords: tuple[str, ...] = ()


@dataclass(frozen=True)
class Listing:
    """What parsing one document gives: its papers, the items it had to skip, notes of
    what was cut to digestbot's bounds, the year it assumed for dates printed without one
    (None when it assumed none) and notes of what it assumed."""

    source: str
    papers: tuple[ListedPaper, ...]
    skipped: tuple[str, ...] = ()
    trimmed: tuple[str, ...] = ()
    assumed_year: int | None = None
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Paper:
    """A stored paper, with its stable id and when digestbot first saw it."""

    id: str
    title: str
    abstract: str
    first_seen: datetime
    published: date | None = None
    upvotes: int | None = None
    author_count: int | None = None
    organisation: str | None = None
    authors: tuple[str, ...] = ()
    sources: tuple[str, ...] = ()
    arxiv_id: str | None = None
    categories: tuple[str, ...] = ()
    links: tuple[tuple[str, str], ...] = ()
    comments: int | None = None

    def link(self, kind: str) -> str | None:
        """The URL of the given kind (hf, abs, pdf, code, project, page), if known."""
        return next((url for k, url in self.links if k == kind), None)

    def page(self) -> str | None:
        """Where the paper is best read: its HF page, else arXiv, else the feed's page."""
        return self.link("hf") or self.link("abs") or self.link("page")


DEFAULT_FIELDS = ("title", "abstract")
# The rule name of the papers a reader's votes recommend (no rule of theirs chose them).
RECOMMENDED = "Recommended from your votes"
# A `like:` rule without `min_similarity` or `top` selects papers at this TF-IDF cosine.
DEFAULT_MIN_SIMILARITY = 0.05


@dataclass(frozen=True)
class Seed:
    """One of a `like:` rule's "papers like these": what the rule says (`label`: a stored
    paper's title, or the text itself) and the text papers are compared with."""

    label: str
    text: str
    paper_id: str | None = None  # the stored paper it names: never chosen by its own rule


@dataclass(frozen=True)
class Rule:
    """One rule (or a named topic's body). It matches when every condition it states holds.

    Hashable on purpose: identical rules across subscribers are evaluated once.
    """

    name: str
    any: tuple[str, ...] = ()
    all: tuple[str, ...] = ()
    none: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    topics: tuple[Rule, ...] = ()
    fields: tuple[str, ...] = DEFAULT_FIELDS
    min_upvotes: int | None = None
    fuzzy: int | None = None
    mode: str = "digest"  # digest | alert
    categories: tuple[str, ...] = ()  # arXiv categories, any of them (see rules.categories)
    like: tuple[Seed, ...] = ()  # papers like these (see rules.similarity)
    min_similarity: float | None = None  # with `like`: DEFAULT_MIN_SIMILARITY when unset
    top: int | None = None  # with `like`: the N most alike papers instead of a threshold

    def terms(self) -> tuple[str, ...]:
        """The positive terms, which can explain a match (`none` terms never do)."""
        return (*self.all, *self.any)


@dataclass(frozen=True)
class Subscriber:
    """A subscriber with their rules and delivery preferences."""

    id: int
    email: str
    name: str
    rules: tuple[Rule, ...]
    max_papers: int = 25
    timezone: str = "UTC"
    send_at: str = "08:00"
    frequency: str = "daily"
    send_empty: bool = False
    created_at: datetime | None = None
    recommend: int = 0  # papers no rule chose that their votes say they would like

    def alert_rules(self) -> tuple[Rule, ...]:
        """The rules whose matches are emailed at once (`mode: alert`)."""
        return tuple(rule for rule in self.rules if rule.mode == "alert")


@dataclass(frozen=True)
class Match:
    """Why a paper reached a subscriber: the rules and terms that matched, and a rank score."""

    rules: tuple[str, ...]
    terms: tuple[str, ...]
    title_terms: tuple[str, ...]
    score: float
    similar: tuple[str, ...] = ()  # `like: <seed> (0.41)`, for papers a `like:` rule chose


@dataclass(frozen=True)
class DigestItem:
    """One paper in a digest, with the reason it is there."""

    paper: Paper
    match: Match


@dataclass(frozen=True)
class Digest:
    """What one subscriber gets this time: ranked, capped items."""

    subscriber: Subscriber
    items: tuple[DigestItem, ...]
    generated_at: datetime
    period_key: str
    kind: str = "digest"
    # Matching papers max_papers kept out: recorded with the email, they come again in the
    # subscriber's next digests while first seen within `carry_days` (0: never).
    left_out: tuple[str, ...] = ()
    carry_days: float = 0
    problem: str | None = None  # why it could not be decided: the subscriber's row fails

    @property
    def dropped(self) -> int:
        """How many matching papers did not fit."""
        return len(self.left_out)
