"""Subscriptions: read the YAML file and validate it into pydantic models."""

from __future__ import annotations

from io import StringIO
from pathlib import Path
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap, CommentedSeq
from ruamel.yaml.error import MarkedYAMLError, YAMLError

from digestbot.addresses import normalise_address
from digestbot.errors import SubscriptionsError
from digestbot.sources.fetch import SourceKind, SourceSpec
from digestbot.sources.links import web_url
from digestbot.textnorm import words

_HINT = "fix the file and run `digestbot subscriptions validate`"


def _check_term(term: str) -> str:
    term = term.strip()
    if not words(term):
        raise ValueError(f"{term!r} has no letters or digits to match")
    return term


def _check_line(text: str) -> str:
    if any(not ch.isprintable() for ch in text):
        raise ValueError("must be one line of printable text")
    return text.strip()


Term = Annotated[str, AfterValidator(_check_term)]
Line = Annotated[str, AfterValidator(_check_line)]
Email = Annotated[str, AfterValidator(normalise_address)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleSpec(_Strict):
    """A rule: `any` (one term occurs), `all` (every term occurs), `none` (no term occurs)."""

    name: Line | None = None
    any: list[Term] = Field(default_factory=list)
    all: list[Term] = Field(default_factory=list)
    none: list[Term] = Field(default_factory=list)

    @model_validator(mode="after")
    def _needs_positive_condition(self) -> RuleSpec:
        if not self.any and not self.all:
            raise ValueError("a rule needs `any` or `all` terms; `none` alone matches nothing")
        return self

    def display_name(self) -> str:
        """The rule's name, or its first terms when it has none."""
        return self.name or ", ".join([*self.all, *self.any][:3])


class SubscriberSpec(_Strict):
    """One subscriber: an address, a display name and at least one rule."""

    email: Email
    name: Line = ""
    max_papers: int | None = Field(None, ge=1, le=500)
    rules: list[RuleSpec] = Field(min_length=1)


class Defaults(_Strict):
    """Values every subscriber inherits unless they set their own."""

    max_papers: int = Field(25, ge=1, le=500)


class SourceConfig(_Strict):
    """A listing source to ingest: `hf`, `arxiv` (RSS), `arxiv-query` (API) or `feed`."""

    kind: SourceKind
    categories: list[str] = Field(default_factory=list)
    query: str | None = None
    url: str | None = None
    include_replacements: bool = False
    max_results: int = Field(200, ge=1, le=2000)

    @model_validator(mode="after")
    def _needs_its_target(self) -> SourceConfig:
        if self.kind == "arxiv" and not self.categories:
            raise ValueError("an arxiv source needs `categories`, e.g. [cs.CL]")
        if self.kind == "arxiv-query" and not (self.query or self.categories):
            raise ValueError("an arxiv-query source needs `query` or `categories`")
        if self.kind == "feed" and not web_url(self.url):
            raise ValueError("a feed source needs an http(s) `url`")
        return self

    def spec(self) -> SourceSpec:
        """The fetchable form of this source."""
        return SourceSpec(
            kind=self.kind,
            categories=tuple(self.categories),
            query=self.query,
            url=self.url,
            include_replacements=self.include_replacements,
            max_results=self.max_results,
        )


class SubscriptionsFile(_Strict):
    """The whole subscriptions file."""

    defaults: Defaults = Field(default_factory=Defaults)
    sources: list[SourceConfig] = Field(default_factory=list)
    subscribers: list[SubscriberSpec] = Field(default_factory=list)


def load_subscriptions(path: Path) -> SubscriptionsFile:
    """Read and validate `path`; raise SubscriptionsError listing every problem at once."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SubscriptionsError(
            [f"{path}: no such file"],
            "create it from subscriptions.example.yaml or set DIGESTBOT_SUBSCRIPTIONS",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriptionsError([f"{path}: cannot read it: {exc}"], _HINT) from None
    return parse_subscriptions(text, source=str(path))


def parse_subscriptions(text: str, *, source: str) -> SubscriptionsFile:
    """Parse YAML 1.2 text and validate it; errors read `file:line:column: path: message`."""
    document = _load_yaml(text, source)
    if document is None:
        document = CommentedMap()
    if not isinstance(document, dict):
        raise SubscriptionsError([f"{source}:1:1: the file must be a mapping"], _HINT)
    try:
        parsed = SubscriptionsFile.model_validate(_plain(document))
    except ValidationError as exc:
        problems = [_describe(source, document, err) for err in exc.errors()]
        raise SubscriptionsError(problems, _HINT) from None
    duplicates = _duplicate_problems(source, document, parsed)
    if duplicates:
        raise SubscriptionsError(duplicates, _HINT)
    return parsed


def _load_yaml(text: str, source: str) -> Any:
    yaml = YAML(typ="rt")
    try:
        return yaml.load(StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f"{source}:{mark.line + 1}:{mark.column + 1}" if mark else source
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        raise SubscriptionsError([f"{where}: YAML syntax: {problem}"], _HINT) from None
    except YAMLError as exc:
        raise SubscriptionsError([f"{source}: YAML syntax: {exc}"], _HINT) from None


def _plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalars, as plain Python values."""
    if isinstance(node, dict):
        return {str(k): _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    if isinstance(node, str):
        return str(node)
    return node


def _describe(source: str, document: Any, error: Any) -> str:
    loc = tuple(error["loc"])
    line, column = _position(document, loc)
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key (check its spelling)"
    return f"{source}:{line}:{column}: {format_path(loc) or '(top level)'}: {message}"


def format_path(loc: tuple[Any, ...]) -> str:
    """A pydantic location as `subscribers[2].rules[0].any`."""
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path


def _position(document: Any, loc: tuple[Any, ...]) -> tuple[int, int]:
    """1-based line and column of the deepest node of `loc` present in the document."""
    node, line, column = document, 0, 0
    for part in loc:
        if isinstance(node, CommentedMap) and part in node:
            line, column = node.lc.key(part)
        elif isinstance(node, CommentedSeq) and isinstance(part, int) and part < len(node):
            line, column = node.lc.item(part)
        else:
            break
        node = node[part]
    return line + 1, column + 1


def _duplicate_problems(source: str, document: Any, parsed: SubscriptionsFile) -> list[str]:
    seen: dict[str, int] = {}
    problems = []
    for index, subscriber in enumerate(parsed.subscribers):
        key = subscriber.email  # normalised: the domain is lower-cased, the local part kept
        if key in seen:
            loc = ("subscribers", index, "email")
            line, column = _position(document, loc)
            problems.append(
                f"{source}:{line}:{column}: {format_path(loc)}: {subscriber.email} is already "
                f"subscribed at subscribers[{seen[key]}]"
            )
        else:
            seen[key] = index
    return problems
