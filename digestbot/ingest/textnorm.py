"""Ingest stage: text normalisation shared by dedupe and matching (NFKC, case-folded words),
and the one cleaning of text from the outside before it reaches a terminal or a header."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")
# C0 and C1 controls and DEL (ESC starts the sequences terminals obey), and the line and
# paragraph separators; the second pattern spares the newline.
_UNSAFE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_UNSAFE_BUT_NEWLINE = re.compile("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029]")
# Bidirectional controls reorder what a reader sees (U+202E makes "gpj.exe" read "exe.jpg").
_BIDI_CONTROL = re.compile("[\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def words(text: str) -> list[str]:
    """Split `text` into NFKC-normalised, case-folded words; any non-alphanumeric separates."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [w for w in _NON_WORD.split(folded) if w]


def normalise_title(title: str) -> str:
    """The form two titles share when they name the same paper."""
    return " ".join(words(title))


def safe_text(text: str, *, newlines: bool = False) -> str:
    """`text` with control characters turned to spaces (newlines kept if `newlines`) and bidi
    controls removed: nothing left in it can steer a terminal or reorder what is shown."""
    controls = _UNSAFE_BUT_NEWLINE if newlines else _UNSAFE
    return _BIDI_CONTROL.sub("", controls.sub(" ", text))
