"""Rules stage (pure), highlighting: where a subscriber's terms occur in an abstract, by the
matching rules (plurals, `prefix*`, phrases, fuzzy), as character ranges to mark."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from functools import lru_cache

from rapidfuzz import fuzz, process

from digestbot.ingest.textnorm import words
from digestbot.rules.matching import FUZZY_MIN_LENGTH, parse_term

_TOKEN = re.compile(r"[^\W_]+")

Span = tuple[int, int]

# An abstract's words in order (start, end, normalised form), where each distinct word stands
# among them, and the distinct words long enough for fuzzy matching.
Tokens = tuple[tuple[tuple[int, int, str], ...], dict[str, tuple[int, ...]], tuple[str, ...]]


# One entry: an abstract's words with their ranges, ~40 KiB; 1024 (~40 MiB) covers the
# abstracts a batch searches word by word, under fuzzy rules or with non-ASCII letters (880
# in a batch over 1,000 generated papers).
@lru_cache(maxsize=1024)
def tokenised(text: str) -> Tokens:
    """The normalised words of `text` with their character ranges in `text` itself, indexed
    by word; cached, since one paper's abstract is presented in many digests."""
    found = []
    for m in _TOKEN.finditer(text):
        token = m.group()
        for word in [token.lower()] if token.isascii() else words(token):
            found.append((m.start(), m.end(), word))
    positions: dict[str, list[int]] = {}
    for i, (_, _, word) in enumerate(found):
        positions.setdefault(word, []).append(i)
    long = tuple(word for word in positions if len(word) >= FUZZY_MIN_LENGTH)
    return tuple(found), {word: tuple(at) for word, at in positions.items()}, long


# One entry: a term's compiled pattern, ~0.1 KiB; 4096 is ~0.4 MiB.
@lru_cache(maxsize=4096)
def _term_pattern(raw: str) -> re.Pattern[str]:
    """A regular expression for an exact (not fuzzy) term in lower-cased ASCII text: the same
    words, plurals and prefix as the matching stage. The caller checks that a match starts
    a word."""
    term = parse_term(raw)
    parts = [re.escape(w) + "(?:e?s)?" for w in term.words]
    if term.prefix and parts:
        parts[-1] = re.escape(term.words[-1]) + r"[^\W_]*"
    body = r"[\W_]+".join(parts) if parts else "(?!)"
    return re.compile(rf"{body}(?![^\W_])")  # starts with a literal: fast to scan for


def token_spans(text: Tokens, raw: str, level: int | None) -> list[Span]:
    """The term's occurrences found word by word (fuzzy terms, non-ASCII text)."""
    tokens, positions, long = text
    term = parse_term(raw)
    n, last = len(term.words), len(term.words) - 1
    hits = [
        _word_hits(w, positions, long, prefix=term.prefix and k == last, fuzzy=level)
        for k, w in enumerate(term.words)
    ]
    if not n or not hits[0]:
        return []
    # Where the first word's hits stand, from the index: most words of a text are not one.
    room = len(tokens) - last
    starts = sorted(i for word in hits[0] for i in positions[word] if i < room)
    return [
        (tokens[i][0], tokens[i + last][1])
        for i in starts
        if all(tokens[i + k][2] in hits[k] for k in range(1, n))
    ]


def _word_hits(
    pattern: str,
    vocabulary: Mapping[str, object],
    long: Sequence[str],
    *,
    prefix: bool,
    fuzzy: int | None,
) -> set[str]:
    """The words of a text (`vocabulary`; `long`, those long enough to be fuzzy) that satisfy
    one term word, as matching.word_matches decides, but scored in one rapidfuzz call over
    the distinct words (a digest does this for every paper)."""
    if prefix:
        return {w for w in vocabulary if w.startswith(pattern)}
    hits = {w for w in (pattern, pattern + "s", pattern + "es") if w in vocabulary}
    if fuzzy is not None and len(pattern) >= FUZZY_MIN_LENGTH:
        found = process.extract(pattern, long, scorer=fuzz.ratio, score_cutoff=fuzzy, limit=None)
        hits.update(word for word, _, _ in found)
    return hits


def find_terms(text: str, terms: Iterable[str], fuzzy: Mapping[str, int | None]) -> list[Span]:
    """Where the terms occur in `text`, by the matching rules (plurals, `prefix*`, phrases,
    fuzzy), as sorted, merged character ranges."""
    spans: list[Span] = []
    for raw in terms:  # a plain loop: this runs for every paper of every digest
        spans += _term_spans(text, raw, fuzzy.get(raw))
    spans.sort()
    merged: list[Span] = []
    for start, end in spans:
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(end, merged[-1][1]))
        else:
            merged.append((start, end))
    return merged


# Subscribers share terms and a day's papers are few, so one abstract is searched for the
# same term in many digests: cached by (text, term, fuzzy level). One entry: the spans of a
# pair, ~0.45 KiB with its share of the abstracts it keeps alive; 65536 is ~29 MiB (a
# 10,000-subscriber batch over 500 papers has ~86,000 pairs).
@lru_cache(maxsize=65536)
def _term_spans(text: str, raw: str, level: int | None) -> tuple[Span, ...]:
    """Where one term occurs in `text`."""
    if level is None and text.isascii():
        folded = text.lower()
        return tuple(
            m.span()
            for m in _term_pattern(raw).finditer(folded)
            if not (m.start() and folded[m.start() - 1].isalnum())  # starts a word
        )
    return tuple(token_spans(tokenised(text), raw, level))
