"""Ingest stage: text normalisation shared by dedupe and matching: NFKC, case-folded words."""

from __future__ import annotations

import re
import unicodedata

_NON_WORD = re.compile(r"[\W_]+")


def words(text: str) -> list[str]:
    """Split `text` into NFKC-normalised, case-folded words; any non-alphanumeric separates."""
    folded = unicodedata.normalize("NFKC", text).casefold()
    return [w for w in _NON_WORD.split(folded) if w]


def normalise_title(title: str) -> str:
    """The form two titles share when they name the same paper."""
    return " ".join(words(title))
