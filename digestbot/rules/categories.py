"""Rules stage (pure): arXiv category conditions, checked as written and matched to papers.

A rule's category is `archive.SUBJECT` (cs.CL), `archive.*` or a bare archive (math,
hep-th); the last two match every category of the archive. Comparison ignores case, as
arXiv has no two categories that differ only by it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# arXiv's archives (https://arxiv.org/category_taxonomy); a rule naming any other is a typo.
ARCHIVES = frozenset(
    {
        "astro-ph",
        "cond-mat",
        "cs",
        "econ",
        "eess",
        "gr-qc",
        "hep-ex",
        "hep-lat",
        "hep-ph",
        "hep-th",
        "math",
        "math-ph",
        "nlin",
        "nucl-ex",
        "nucl-th",
        "physics",
        "q-bio",
        "q-fin",
        "quant-ph",
        "stat",
    }
)
# Archive names are lowercase words joined by dashes; subject classes are letters and
# dashes in either case (cs.CL, physics.comp-ph, cond-mat.mes-hall).
_SHAPE = re.compile(r"^([a-z]+(?:-[a-z]+)*)(?:\.([A-Za-z]+(?:-[A-Za-z]+)*|\*))?$")


def check_category(value: str) -> str:
    """`value` stripped, or ValueError saying why it is not an arXiv category pattern."""
    value = value.strip()
    # "CS.CL" is cs.CL: matching ignores case, so the check does too.
    archive, dot, subject = value.partition(".")
    shape = _SHAPE.match(f"{archive.lower()}{dot}{subject}")
    if shape is None:
        raise ValueError(
            f"{value!r} is not an arXiv category: write archive.SUBJECT (cs.CL), "
            "archive.* (cs.*) or a bare archive (math)"
        )
    if shape.group(1) not in ARCHIVES:
        known = ", ".join(sorted(ARCHIVES))
        raise ValueError(f"unknown arXiv archive {shape.group(1)!r} (known: {known})")
    return shape.group(0)


def category_matches(pattern: str, category: str) -> bool:
    """Whether a paper's `category` is the one `pattern` names, or in the archive it names."""
    wanted, have = pattern.casefold(), category.casefold()
    if wanted.endswith(".*"):
        wanted = wanted[:-2]
    if "." in wanted:
        return have == wanted
    return have == wanted or have.startswith(wanted + ".")


def matching_categories(pattern: str, categories: Iterable[str]) -> list[str]:
    """The categories that `pattern` accepts, sorted, each once: what explains a match."""
    return sorted({c for c in categories if category_matches(pattern, c)})


class CategoryIndex:
    """Bitsets of papers per category (bit i = paper i), for `matchindex`."""

    def __init__(self, categories_of_papers: Iterable[Iterable[str]]) -> None:
        self.postings: dict[str, int] = {}
        for i, categories in enumerate(categories_of_papers):
            for category in categories:
                self.postings[category] = self.postings.get(category, 0) | 1 << i
        self._patterns: dict[str, tuple[tuple[str, int], ...]] = {}

    def explaining(self, pattern: str) -> tuple[tuple[str, int], ...]:
        """Each category the pattern accepts, sorted as `matching_categories` sorts them,
        with its papers."""
        if pattern not in self._patterns:
            found = matching_categories(pattern, self.postings)
            self._patterns[pattern] = tuple((c, self.postings[c]) for c in found)
        return self._patterns[pattern]

    def mask(self, patterns: Iterable[str]) -> int:
        """Papers with a category any of the patterns accepts."""
        mask = 0
        for pattern in patterns:
            for _, papers in self.explaining(pattern):
                mask |= papers
        return mask
