"""Test helper: the arXiv API stand-in's search (its own analyser and search_query parser)."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

Entry = dict[str, Any]


def terms(text: str) -> list[str]:
    """A search engine's analyser: fold accents and case (ß is ss), split on non-alphanumerics."""
    decomposed = unicodedata.normalize("NFKD", text)
    bare = "".join(c for c in decomposed if not unicodedata.combining(c))
    return re.findall(r"[a-z0-9]+", bare.casefold())


# ---- the search_query grammar: or := and (OR and)*; and := unit ((AND|ANDNOT) unit)*;
# unit := '(' or ')' | [field ':'] (word | "phrase"). Juxtaposed units are ANDed.
_TOKEN = re.compile(r'\s*(?:(\()|(\))|(\w+):("[^"]*"|[^\s()"]+)|("[^"]*")|([^\s()"]+))')
FIELDS = ("ti", "au", "abs", "cat", "all", "id")


class QueryError(ValueError):
    """A search_query the stand-in cannot read."""


@dataclass(frozen=True)
class Term:
    field: str
    text: str
    phrase: bool


Node = Term | tuple[str, Any, Any]


def tokenize(query: str) -> list[Any]:
    tokens: list[Any] = []
    pos = 0
    while pos < len(query):
        if not query[pos:].strip():
            break
        m = _TOKEN.match(query, pos)
        if not m or m.end() == pos:
            raise QueryError(f"cannot read {query[pos:]!r}")
        pos = m.end()
        opening, closing, name, value, quoted, bare = m.groups()
        if opening or closing:
            tokens.append(opening or closing)
        elif name:
            if name not in FIELDS:
                raise QueryError(f"unknown field {name!r}")
            tokens.append(Term(name, value.strip('"'), value.startswith('"')))
        elif bare in ("AND", "OR", "ANDNOT"):
            tokens.append(bare)
        else:
            text = quoted or bare
            tokens.append(Term("all", text.strip('"'), text.startswith('"')))
    return tokens


class Parser:
    """A recursive-descent parser over the tokens of one search_query."""

    def __init__(self, query: str) -> None:
        self.tokens = tokenize(query)
        self.pos = 0

    def parse(self) -> Node:
        node = self.either()
        if self.pos != len(self.tokens):
            raise QueryError(f"unexpected {self.tokens[self.pos]!r}")
        return node

    def peek(self) -> Any:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def either(self) -> Node:
        node = self.both()
        while self.peek() == "OR":
            self.pos += 1
            node = ("OR", node, self.both())
        return node

    def both(self) -> Node:
        node = self.unit()
        while (op := self.peek()) in ("AND", "ANDNOT") or isinstance(op, Term) or op == "(":
            if op in ("AND", "ANDNOT"):
                self.pos += 1
            node = ("ANDNOT" if op == "ANDNOT" else "AND", node, self.unit())
        return node

    def unit(self) -> Node:
        token = self.peek()
        self.pos += 1
        if token == "(":
            node = self.either()
            if self.peek() != ")":
                raise QueryError("unbalanced parentheses")
            self.pos += 1
            return node
        if isinstance(token, Term):
            return token
        raise QueryError(f"expected a term, got {token!r}")


def _contains(haystack: list[str], needle: list[str]) -> bool:
    n = len(needle)
    return n > 0 and any(haystack[i : i + n] == needle for i in range(len(haystack) - n + 1))


def _field_texts(entry: Entry, name: str) -> list[str]:
    if name == "ti":
        return [entry["title"]]
    if name == "au":
        return list(entry["authors"])
    if name == "abs":
        return [entry["abstract"]]
    return [entry["title"], entry["abstract"], *entry["authors"]]


def term_matches(term: Term, entry: Entry) -> bool:
    if term.field == "cat":
        wanted = term.text
        if wanted.endswith(".*"):
            return any(c.startswith(wanted[:-1]) for c in entry["categories"])
        return wanted in entry["categories"]
    if term.field == "id":
        return entry["id"] == term.text.split("v")[0]
    words = terms(term.text)
    texts = [terms(text) for text in _field_texts(entry, term.field)]
    if term.phrase:
        return any(_contains(text, words) for text in texts)
    return all(any(w in text for text in texts) for w in words) and bool(words)


def matches(node: Node, entry: Entry) -> bool:
    if isinstance(node, Term):
        return term_matches(node, entry)
    op, left, right = node
    if op == "OR":
        return matches(left, entry) or matches(right, entry)
    if op == "AND":
        return matches(left, entry) and matches(right, entry)
    return matches(left, entry) and not matches(right, entry)


def title_terms(node: Node) -> Iterable[list[str]]:
    """The words of every ti: term, to rank an entry whose whole title equals one first."""
    if isinstance(node, Term):
        if node.field == "ti":
            yield terms(node.text)
        return
    yield from title_terms(node[1])
    yield from title_terms(node[2])


def id_key(arxiv_id: str) -> tuple[int, int]:
    yymm, _, number = arxiv_id.partition(".")
    return int(yymm) if yymm.isdigit() else 0, int(number) if number.isdigit() else 0
