"""Ingest stage: parse a Hugging Face Daily Papers page saved as plain text."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import date

from digestbot.errors import ListingError
from digestbot.models import ListedPaper, Listing

_HEADER_LINES = frozenset(
    {
        "new",
        "get trending papers in your email inbox!",
        "get trending papers in your email inbox once a day!",
        "subscribe",
        "daily papers",
        "byak and the research community",
    }
)
_MONTHS = {
    m: i
    for i, m in enumerate(
        ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"], 1
    )
}
_DAY = r"(?P<month>[A-Z][a-z]{2}) (?P<day>\d{1,2})"
_LISTING_DATE = re.compile(rf"^{_DAY}$")
_PUBLISHED = re.compile(rf"^{_DAY}(?:, (?P<year>\d{{4}}))?(?: (?P<upvotes>\d+))?$")
_AUTHORS = re.compile(r"^•\s*(?P<count>\d+) authors?$")
_BLANK_LINES = re.compile(r"\n[ \t]*\n")
_SEPARATOR = "·"


def parse_daily_papers(text: str, *, source: str, today: date, year: int | None = None) -> Listing:
    """Parse a Daily Papers page saved as text, in the block or the compact layout.

    `today` (the day the page was saved, as far as the caller knows) dates the listing when
    its header omits the year: the listing is taken to be the latest such day not after
    `today`, and the Listing names the year so assumed; `year` overrides that guess.
    """
    text = text.replace("\r\n", "\n").replace("\ufeff", "")
    lines = [line.strip() for line in text.split("\n")]
    if _SEPARATOR in lines:
        return _parse_blocks(text, source=source, today=today, year=year)
    content = [line for line in lines if line]
    if len(content) >= 2 and content[0].lower().startswith("get trending papers"):
        return _parse_compact(content, source=source)
    raise ListingError(
        f"{source}: not a Daily Papers listing (neither the block nor the compact layout)",
        "save the Daily Papers page as plain text and ingest that file",
    )


def _parse_compact(lines: list[str], *, source: str) -> Listing:
    """Compact layout: header lines, then title and abstract lines strictly alternating."""
    body = [line for line in lines if line.lower() not in _HEADER_LINES]
    while body and body[0].lower().startswith("get trending papers"):
        body.pop(0)
    # Saving the page glues the Subscribe button's label to the first title.
    if body and body[0].startswith("Subscribe"):
        body[0] = body[0][len("Subscribe") :].strip()
    papers = [
        ListedPaper(title=t, abstract=a) for t, a in zip(body[0::2], body[1::2], strict=False)
    ]
    skipped = [f"{source}: line {len(lines)}: a title without an abstract"] if len(body) % 2 else []
    return Listing(source=source, papers=tuple(papers), skipped=tuple(skipped))


def _parse_blocks(text: str, *, source: str, today: date, year: int | None) -> Listing:
    """Block layout: header, then per paper a title, an abstract and a metadata block."""
    blocks = [b.strip("\n") for b in _BLANK_LINES.split(text) if b.strip()]
    listing_day, body = _split_header(blocks)
    assumed = None if year else _guess_listing_year(listing_day, body, today)
    listing_year = year or assumed or today.year
    papers: list[ListedPaper] = []
    skipped: list[str] = []
    pending: list[str] = []
    for number, block in enumerate(body, 1):
        if _SEPARATOR not in [line.strip() for line in block.split("\n")]:
            pending.append(block.strip())
            continue
        # Papers shown without a metadata block come as bare title/abstract pairs first.
        while len(pending) > 2:
            papers.append(ListedPaper(title=pending.pop(0), abstract=pending.pop(0)))
        if len(pending) == 2:
            papers.append(_with_metadata(pending[0], pending[1], block, listing_year, listing_day))
        else:
            skipped.append(f"{source}: block {number}: metadata without a title and abstract")
        pending = []
    while len(pending) >= 2:
        papers.append(ListedPaper(title=pending.pop(0), abstract=pending.pop(0)))
    if pending:
        skipped.append(f"{source}: last block: a title without an abstract")
    return Listing(
        source=source, papers=tuple(papers), skipped=tuple(skipped), assumed_year=assumed
    )


def _split_header(blocks: list[str]) -> tuple[tuple[int, int] | None, list[str]]:
    """Drop the page header; return the listing's (month, day) if it states one."""
    index = 0
    listing_day: tuple[int, int] | None = None
    while index < len(blocks) and blocks[index].strip().lower() in _HEADER_LINES:
        index += 1
    if index < len(blocks) and (m := _LISTING_DATE.match(blocks[index].strip())):
        month = _MONTHS.get(m["month"].lower())
        if month:
            listing_day = (month, int(m["day"]))
            index += 1
    return listing_day, blocks[index:]


def _guess_listing_year(listing_day: tuple[int, int] | None, body: list[str], today: date) -> int:
    """The listing's year: the latest occurrence of its day not after `today`.

    A page only prints years that differ from its own, so it is also later than them all.
    """
    guess = today.year
    if listing_day and listing_day > (today.month, today.day):
        guess -= 1
    explicit = [int(m["year"]) for m in _published_matches(body) if m["year"]]
    return max([guess, *(y + 1 for y in explicit)])


def _published_matches(body: list[str]) -> Iterator[re.Match[str]]:
    for block in body:
        for line in block.split("\n"):
            if m := _PUBLISHED.match(line.strip()):
                yield m


def _with_metadata(
    title: str, abstract: str, block: str, year: int, listing_day: tuple[int, int] | None
) -> ListedPaper:
    """Build a paper from its title, abstract and metadata lines (authors or org, date)."""
    author_count: int | None = None
    organisation: str | None = None
    published: date | None = None
    upvotes: int | None = None
    for raw in block.split("\n"):
        line = raw.strip()
        if not line or line == _SEPARATOR:
            continue
        if m := _AUTHORS.match(line):
            author_count = int(m["count"])
        elif m := _PUBLISHED.match(line):
            published = _published_date(m, year, listing_day)
            upvotes = int(m["upvotes"]) if m["upvotes"] else None
        else:
            # An organisation line is "<slug> <display name>", e.g. "nyu-visionx NYU VisionX".
            slug, _, name = line.partition(" ")
            organisation = name.strip() or slug
    return ListedPaper(
        title=title,
        abstract=abstract,
        published=published,
        upvotes=upvotes,
        author_count=author_count,
        organisation=organisation,
    )


def _published_date(
    m: re.Match[str], year: int, listing_day: tuple[int, int] | None
) -> date | None:
    month = _MONTHS.get(m["month"].lower())
    if month is None:
        return None
    day = int(m["day"])
    if m["year"]:
        year_of_paper = int(m["year"])
    else:
        # A yearless date after the listing's own day can only be from the year before.
        later = listing_day is not None and (month, day) > listing_day
        year_of_paper = year - 1 if later else year
    try:
        return date(year_of_paper, month, day)
    except ValueError:
        return None
