"""Compose stage (pure): the small text helpers every part of an email uses: counts, dates,
trimming and wrapping."""

from __future__ import annotations

from datetime import date
from functools import lru_cache

EXCERPT_CHARS = 300  # characters of an abstract a paper shows


def plural(count: int, noun: str) -> str:
    """`1 paper`, `2 papers`."""
    return f"{count} {noun}{'' if count == 1 else 's'}"


def short_date(day: date) -> str:
    """`Nov 3`, on every platform."""
    return f"{day:%b} {day.day}"


def trim_words(text: str, limit: int = EXCERPT_CHARS) -> str:
    """`text` cut at a word boundary to at most `limit` characters, with an ellipsis if cut."""
    text = " ".join(text.split())
    if len(text) <= limit:
        return text
    cut = text[:limit].rsplit(" ", 1)[0].rstrip(",.;:")
    return f"{cut}…"


# One entry: an abstract and its single-spaced copy, ~0.9 KiB; 4096 is ~4 MiB.
@lru_cache(maxsize=4096)
def single_spaced(text: str) -> str:
    """`text` with every run of white space made one space; cached, since one paper's
    abstract is shown in many digests."""
    return " ".join(text.split())


# Cached: the text template wraps each paper's title and excerpt the same way in every
# digest that shows it (bench digests as a render process gets them: the text part 0.25 ->
# 0.17 ms a digest). One entry: a text and its wrapped copy, ~0.7 KiB; 32768 is ~22 MiB
# (a 1,000-subscriber batch over 1,000 papers filled 30,000).
@lru_cache(maxsize=32768)
def wrap(text: str, width: int = 80, indent: str = "", first: str | None = None) -> str:
    """`text` folded to `width` columns, every line after the first starting with `indent`
    (the first with `first`, default `indent`). URLs and long words are never broken, so a
    line is only wider than `width` when a single word is."""
    text, prefix = " ".join(str(text).split()), indent if first is None else first
    lines: list[str] = []
    # Greedy, a line at a time: the last space within reach ends the line (with one space
    # between words, the words before it fit); a first word too long for any line stands
    # alone, unbroken.
    while len(prefix) + len(text) > width:
        cut = text.rfind(" ", 0, max(width - len(prefix), 0) + 1)
        if cut < 0 and (cut := text.find(" ")) < 0:
            break
        lines.append(prefix + text[:cut])
        text, prefix = text[cut + 1 :], indent
    lines.append(prefix + text)
    return "\n".join(lines)
