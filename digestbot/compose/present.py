"""Compose stage (pure): what each paper of a digest shows, prepared so templates stay thin.

Paper text is untrusted: `Excerpt.html()` escapes every piece before wrapping matched terms in
`<mark>`, and only http(s) URLs are ever offered as links.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from functools import cached_property
from urllib.parse import urlencode
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from markupsafe import Markup, escape

from digestbot.compose.votes import VoteLinks
from digestbot.compose.words import EXCERPT_CHARS, plural, short_date, single_spaced, trim_words
from digestbot.ingest.links import web_url
from digestbot.models import Digest, DigestItem, Match, Paper, Rule, Subscriber
from digestbot.rules.highlight import Span, find_terms
from digestbot.rules.matching import rank_key

SHOWN_AUTHORS = 3
_MARK_OPEN = Markup('<mark class="hl">')
_MARK_CLOSE = Markup("</mark>")
_TO_ESCAPE = re.compile(r"[&<>'\"]")  # what markupsafe.escape changes


@dataclass(frozen=True)
class Excerpt:
    """A stretch of an abstract and the character ranges in it to highlight."""

    text: str
    spans: tuple[Span, ...] = ()

    def html(self, mark: str = _MARK_OPEN) -> Markup:
        """The text escaped, with each highlighted range in `mark` (markup of the template's
        own, `<mark class="hl">` by default) and `</mark>`."""
        text, mark_open = self.text, Markup(mark)
        # Text with nothing to escape (most abstracts) is cut as it is: the same pieces,
        # without an escape call for each.
        clean = _TO_ESCAPE.search(text) is None
        pieces: list[str] = []
        pos = 0
        for start, end in self.spans:
            before, marked = text[pos:start], text[start:end]
            if not clean:
                before, marked = escape(before), escape(marked)
            pieces += [before, mark_open, marked, _MARK_CLOSE]
            pos = end
        pieces.append(text[pos:] if clean else escape(text[pos:]))
        # Every piece is escaped text or our own tag, so the plain join is safe (Markup's
        # join would escape each piece a second time, finding nothing to do).
        return Markup("".join(pieces))

    def __str__(self) -> str:
        return self.text


@dataclass(frozen=True)
class PaperView:
    """One paper as an email shows it."""

    paper: Paper
    title: str
    url: str | None
    authors: str
    published: date | None
    upvotes: int | None
    comments: int | None
    excerpt: Excerpt
    pdf: str | None
    code: str | None
    terms: tuple[str, ...]
    rules: tuple[str, ...]
    votes: VoteLinks | None = None  # the reader's feedback links, when there are any
    search: str | None = None  # arXiv's search for the title, for a paper with no page yet
    paper_similar: tuple[str, ...] = ()  # `like: <seed> (0.41)` from the rules that chose it
    abstract_page: str | None = None  # arXiv's page, when `url` is another (Hugging Face's)

    # Cached: the HTML and text templates each read these (a frozen dataclass keeps its
    # fields; cached_property writes beside them).
    @cached_property
    def facts(self) -> list[str]:
        """Authors, publication date, upvotes and comments, those that are known."""
        return [self.authors, *self.stats] if self.authors else self.stats

    @cached_property
    def stats(self) -> list[str]:
        """Publication date, upvotes and comments, those that are known."""
        facts = []
        if self.published:
            facts.append(f"{short_date(self.published)}, {self.published.year}")
        if self.upvotes is not None:
            facts.append(plural(self.upvotes, "upvote"))
        if self.comments:
            facts.append(plural(self.comments, "comment"))
        return facts

    @cached_property
    def matched(self) -> str:
        """Why the paper is here: `matched: term, term, like: seed (0.41) (rule; rule)`."""
        reasons = ", ".join((*self.terms, *self.paper_similar))
        return f"matched: {reasons} ({'; '.join(self.rules)})"


@dataclass(frozen=True)
class Group:
    """The papers shown under one rule, best first."""

    name: str
    papers: tuple[PaperView, ...]


@dataclass(frozen=True)
class DigestView:
    """A whole digest as an email shows it."""

    count: int
    groups: tuple[Group, ...]
    day: date
    dropped: int  # matching papers left out by max_papers
    carry_days: float  # how long they may come in later digests; 0: never

    @property
    def topics(self) -> list[str]:
        return [group.name for group in self.groups]

    @property
    def papers(self) -> list[PaperView]:
        return [view for group in self.groups for view in group.papers]

    @property
    def carry_for(self) -> str:
        """`7 days`, `1 day`, `1.5 days`: how long left-out papers may still come."""
        return f"{self.carry_days:g} day{'' if self.carry_days == 1 else 's'}"

    @property
    def preheader(self) -> str:
        """The line mail clients show after the subject: the best papers' titles."""
        return trim_words(" · ".join(view.title for view in self.papers[:3]), 140)


def authors_line(paper: Paper) -> str:
    """`A, B, C et al.`; without names, the author count and organisation when known."""
    if paper.authors:
        shown = ", ".join(paper.authors[:SHOWN_AUTHORS])
        return f"{shown} et al." if len(paper.authors) > SHOWN_AUTHORS else shown
    known = [plural(paper.author_count, "author")] if paper.author_count else []
    return " · ".join([*known, *([paper.organisation] if paper.organisation else [])])


def _sentence_end(text: str, low: int, high: int) -> int:
    """The last ". " in text[low:high] that a capital letter follows ("e.g. the" is not one),
    or -1."""
    found = text.rfind(". ", low, high)
    while found >= 0 and not text[found + 2 : found + 3].isupper():
        found = text.rfind(". ", low, found)
    return found


def excerpt(text: str, spans: Sequence[Span], limit: int = EXCERPT_CHARS) -> Excerpt:
    """About `limit` characters of `text` around its first highlighted range, from the start
    of its sentence when that is near, cut at word boundaries with an ellipsis wherever text
    was left out."""
    if len(text) <= limit:
        return Excerpt(text, tuple(spans))
    first = spans[0][0] if spans else 0
    if first < limit * 2 // 3:
        start = 0
    elif (sentence := _sentence_end(text, max(first - limit // 2, 0), first)) >= 0:
        start = sentence + 2  # the sentence holding the match, when it starts close enough
    else:
        start = text.rfind(" ", 0, first - limit // 4) + 1
    end = start + limit
    if end >= len(text):
        end, start = len(text), text.find(" ", len(text) - limit) + 1
    elif (cut := text.rfind(" ", start, end)) > start:
        end = cut
    while end > start and text[end - 1] in ",.;:":
        end -= 1
    kept = tuple(
        (max(s, start) - start, min(e, end) - start) for s, e in spans if s < end and e > start
    )
    lead = "… " if start > 0 else ""
    tail = "…" if end < len(text) else ""
    shift = len(lead)
    return Excerpt(f"{lead}{text[start:end]}{tail}", tuple((s + shift, e + shift) for s, e in kept))


def fuzziness(subscriber: Subscriber) -> dict[str, int | None]:
    """Each term's fuzzy threshold across the subscriber's rules and topics."""
    found: dict[str, int | None] = {}
    for rule in subscriber.rules:
        for body in (rule, *rule.topics):
            for term in body.terms():
                levels = [v for v in (found.get(term), body.fuzzy) if v is not None]
                found[term] = min(levels) if levels else None
    return found


def present_item(
    item: DigestItem, fuzzy: Mapping[str, int | None], votes: VoteLinks | None = None
) -> PaperView:
    """What one paper shows: links checked, authors shortened, abstract trimmed, terms marked."""
    paper = item.paper
    text = single_spaced(paper.abstract)
    url = web_url(paper.page())
    return PaperView(
        paper=paper,
        title=single_spaced(paper.title),
        url=url,
        authors=authors_line(paper),
        published=paper.published,
        upvotes=paper.upvotes,
        comments=paper.comments,
        excerpt=excerpt(text, find_terms(text, item.match.terms, fuzzy)),
        pdf=web_url(paper.link("pdf")),
        code=web_url(paper.link("code")),
        terms=item.match.terms,
        rules=item.match.rules,
        votes=votes,
        search=None if url else title_search(paper.title),
        paper_similar=item.match.similar,
        abstract_page=_other(web_url(paper.link("abs")), url),
    )


def _other(link: str | None, shown: str | None) -> str | None:
    return link if link != shown else None


def title_search(title: str) -> str:
    """arXiv's search for `title`: where a paper known only by its title (a saved page)
    can be opened from, until it has a page of its own."""
    query = urlencode({"query": single_spaced(title), "searchtype": "title"})
    return f"https://arxiv.org/search/?{query}"


def local_day(moment: datetime, timezone: str) -> date:
    """The calendar day of `moment` where the subscriber lives (UTC if the zone is unknown)."""
    try:
        return moment.astimezone(ZoneInfo(timezone)).date()
    except (ZoneInfoNotFoundError, ValueError):
        return moment.date()


def rule_terms(rules: Sequence[Rule]) -> dict[str, frozenset[str]]:
    """Each rule's own terms and authors (its topics' terms included), by rule name; of two
    rules with one name, the first counts."""
    own: dict[str, frozenset[str]] = {}
    for rule in rules:
        if rule.name not in own:
            topics = (t for sub in rule.topics for t in sub.terms())
            own[rule.name] = frozenset({*rule.terms(), *rule.authors, *topics})
    return own


def home_rule(match: Match, own: Mapping[str, frozenset[str]]) -> str:
    """The matched rule that explains the paper best: most of its terms in the title, then
    most of its terms anywhere, then the first in the subscriber's order. `own` is
    `rule_terms` of the subscriber's rules (worked out once a digest, not once a paper)."""
    if len(match.rules) == 1:  # most papers match one rule: nothing to weigh
        return match.rules[0]
    in_title, anywhere = set(match.title_terms), set(match.terms)

    def weight(name: str) -> tuple[int, int]:
        terms = own.get(name, frozenset())
        return (len(terms & in_title), len(terms & anywhere))

    return max(match.rules, key=weight, default="")


def present_digest(digest: Digest, votes: Mapping[str, VoteLinks] | None = None) -> DigestView:
    """Papers grouped under the rule that explains each best (see `home_rule`); groups in
    the order of their best paper, papers by score, then upvotes, then title; each with its
    `votes` links (by paper id) when given."""
    fuzzy = fuzziness(digest.subscriber)
    ranked = sorted(digest.items, key=lambda item: rank_key(item.paper, item.match))
    own = rule_terms(digest.subscriber.rules)
    groups: dict[str, list[PaperView]] = {}
    for item in ranked:
        name = home_rule(item.match, own)
        links = votes.get(item.paper.id) if votes else None
        groups.setdefault(name, []).append(present_item(item, fuzzy, links))
    return DigestView(
        count=len(digest.items),
        groups=tuple(Group(name, tuple(views)) for name, views in groups.items()),
        day=local_day(digest.generated_at, digest.subscriber.timezone),
        dropped=digest.dropped,
        carry_days=digest.carry_days,
    )
