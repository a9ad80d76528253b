"""Rules stage: the YAML file validated into pydantic models, then resolved into Rules."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (
    AfterValidator,
    Field,
    ValidationError,
    model_validator,
)

from digestbot.addresses import normalise_address
from digestbot.errors import SubscriptionsError
from digestbot.ingest.textnorm import words
from digestbot.models import Rule, Seed
from digestbot.rules.categories import check_category
from digestbot.rules.sources import BASE_KEY, CHECK_KEY, SourceConfig
from digestbot.rules.yamlfile import (
    MAX_YAML_BYTES,
    Strict,
    YamlProblem,
    line_order,
    load_yaml,
    plain,
    problem_line,
    validation_problem,
)

_HINT = "fix the file and run `digestbot subscriptions validate`"
# What a `like:` seed is wrong in (e.g. an arXiv id no stored paper has), or None.
SeedCheck = Callable[[str], str | None]
_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_FREQUENCY = re.compile(r"^(daily|weekdays|weekly:(mon|tue|wed|thu|fri|sat|sun))$")


def _check_term(term: str) -> str:
    term = term.strip()
    if not words(term.rstrip("*")):
        raise ValueError(f"{term!r} has no letters or digits to match")
    if "*" in term.rstrip("*") or term.endswith("**"):
        raise ValueError(f"{term!r}: `*` may only end a term, once")
    return term


def _check_line(text: str) -> str:
    if any(not ch.isprintable() for ch in text):
        raise ValueError("must be one line of printable text")
    return text.strip()


def _check_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(
            f"unknown timezone {name!r} (use an IANA name such as Europe/Berlin)"
        ) from None
    return name


def _check_time(value: str) -> str:
    if not _TIME.match(value):
        raise ValueError(f"{value!r} is not a time of day as HH:MM (24-hour, quoted)")
    return value


def _check_frequency(value: str) -> str:
    if not _FREQUENCY.match(value):
        raise ValueError(f"{value!r} is not daily, weekdays or weekly:<mon..sun>")
    return value


FieldName = Literal["title", "abstract", "authors"]


def _default_fields() -> list[FieldName]:
    return ["title", "abstract"]


Term = Annotated[str, AfterValidator(_check_term)]
Line = Annotated[str, AfterValidator(_check_line)]
Category = Annotated[str, AfterValidator(check_category)]
Email = Annotated[str, AfterValidator(normalise_address)]
Timezone = Annotated[str, AfterValidator(_check_timezone)]
TimeOfDay = Annotated[str, AfterValidator(_check_time)]
Frequency = Annotated[str, AfterValidator(_check_frequency)]


class TopicSpec(Strict):
    """A named, reusable rule body."""

    any: list[Term] = Field(default_factory=list)
    all: list[Term] = Field(default_factory=list)
    none: list[Term] = Field(default_factory=list)
    authors: list[Line] = Field(default_factory=list)
    categories: list[Category] = Field(default_factory=list)
    fields: list[FieldName] = Field(default_factory=_default_fields, min_length=1)
    min_upvotes: int | None = Field(None, ge=0)
    fuzzy: int | None = Field(None, ge=50, le=100)
    like: list[Line] = Field(default_factory=list)
    min_similarity: float | None = Field(None, gt=0, le=1)
    top: int | None = Field(None, ge=1, le=1000)

    @model_validator(mode="after")
    def _needs_positive_condition(self) -> TopicSpec:
        positive = self.any or self.all or self.authors or self.categories or self.like
        if not (positive or getattr(self, "topics", None)):
            raise ValueError(
                "needs a positive condition: `any`, `all`, `authors`, `categories`, `like` or "
                "`topics` (`none` and `min_upvotes` alone match nothing)"
            )
        if any(not seed.strip() for seed in self.like):
            raise ValueError("a `like` seed is empty: give a paper's arXiv id or title, or a text")
        if (self.min_similarity is not None or self.top is not None) and not self.like:
            raise ValueError("`min_similarity` and `top` go with `like`")
        if self.min_similarity is not None and self.top is not None:
            raise ValueError("give `min_similarity` or `top`, not both")
        return self

    def to_rule(self, name: str, topics: tuple[Rule, ...] = (), mode: str = "digest") -> Rule:
        return Rule(
            name=name,
            any=tuple(self.any),
            all=tuple(self.all),
            none=tuple(self.none),
            authors=tuple(self.authors),
            topics=topics,
            fields=tuple(dict.fromkeys(self.fields)),
            min_upvotes=self.min_upvotes,
            fuzzy=self.fuzzy,
            mode=mode,
            categories=tuple(dict.fromkeys(self.categories)),
            # Seeds as written: `subscriptions sync` resolves stored papers to their text.
            like=tuple(Seed(seed, seed) for seed in dict.fromkeys(self.like)),
            min_similarity=self.min_similarity,
            top=self.top,
        )


class RuleSpec(TopicSpec):
    """A subscriber's rule: a rule body plus a name, topics and a delivery mode."""

    name: Line | None = None
    topics: list[str] = Field(default_factory=list)
    mode: Literal["digest", "alert"] = "digest"

    def display_name(self) -> str:
        """The rule's name, or what it looks for when it has none."""
        listed = [*self.topics, *self.all, *self.any, *self.authors, *self.categories]
        listed += [f"like {seed}" for seed in self.like]
        return self.name or ", ".join(listed[:3])


class Defaults(Strict):
    """Values every subscriber inherits unless they set their own."""

    timezone: Timezone = "UTC"
    send_at: TimeOfDay = "08:00"
    frequency: Frequency = "daily"
    max_papers: int = Field(25, ge=1, le=500)
    send_empty: bool = False
    recommend: int = Field(0, ge=0, le=50)


class SubscriberSpec(Strict):
    """One subscriber: an address, rules, and optional overrides of the defaults."""

    email: Email
    name: Line = ""
    timezone: Timezone | None = None
    send_at: TimeOfDay | None = None
    frequency: Frequency | None = None
    max_papers: int | None = Field(None, ge=1, le=500)
    send_empty: bool | None = None
    recommend: int | None = Field(None, ge=0, le=50)
    rules: list[RuleSpec] = Field(min_length=1)


class SubscriptionsFile(Strict):
    """The whole subscriptions file."""

    defaults: Defaults = Field(default_factory=Defaults)
    topics: dict[str, TopicSpec] = Field(default_factory=dict)
    sources: list[SourceConfig] = Field(default_factory=list)
    subscribers: list[SubscriberSpec] = Field(default_factory=list)

    def schedule_of(self, subscriber: SubscriberSpec) -> tuple[str, str, str]:
        """The subscriber's timezone, send_at and frequency, the defaults filling the gaps."""
        defaults = self.defaults
        return (
            subscriber.timezone or defaults.timezone,
            subscriber.send_at or defaults.send_at,
            subscriber.frequency or defaults.frequency,
        )

    def rules_of(self, subscriber: SubscriberSpec) -> tuple[Rule, ...]:
        """The subscriber's rules with their topics resolved into rule bodies."""
        return tuple(
            spec.to_rule(
                spec.display_name(),
                topics=tuple(self.topics[t].to_rule(t) for t in spec.topics),
                mode=spec.mode,
            )
            for spec in subscriber.rules
        )


def load_subscriptions(
    path: Path, *, check_folders: bool = False, check_seed: SeedCheck | None = None
) -> SubscriptionsFile:
    """Read and validate `path`; raise SubscriptionsError listing every problem at once
    (with `check_folders`, each folder source's folder that does not exist among them)."""
    try:
        # One character past the limit is enough for load_yaml to refuse the file.
        with path.open(encoding="utf-8") as file:
            text = file.read(MAX_YAML_BYTES + 1)
    except FileNotFoundError:
        raise SubscriptionsError(
            [f"{path}: no such file"],
            "run `digestbot init` to write one, or set DIGESTBOT_SUBSCRIPTIONS",
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise SubscriptionsError([f"{path}: cannot read it: {exc}"], _HINT) from None
    return parse_subscriptions(
        text,
        source=str(path),
        base=path.absolute().parent,
        check_folders=check_folders,
        check_seed=check_seed,
    )


def parse_subscriptions(
    text: str,
    *,
    source: str,
    base: Path | None = None,
    check_folders: bool = False,
    check_seed: SeedCheck | None = None,
) -> SubscriptionsFile:
    """Parse YAML 1.2 text and validate it; errors read `file:line:column: path: message`.
    A folder source's relative `path` is taken from `base` (default: the working directory);
    with `check_folders`, a folder that does not exist is one of the errors, and with
    `check_seed`, each `like:` seed it has something to say of (an unknown arXiv id)."""
    try:
        document = load_yaml(text, source)
    except YamlProblem as exc:
        raise SubscriptionsError([str(exc)], _HINT) from None
    if document is None:
        document = {}
    if not isinstance(document, dict):
        raise SubscriptionsError([f"{source}:1:1: the file must be a mapping"], _HINT)
    data = plain(document)
    problems = _cross_checks(source, document, data)
    if check_seed is not None:
        problems += _seed_checks(source, document, data, check_seed)
    try:
        context = {BASE_KEY: base, CHECK_KEY: check_folders}
        parsed = SubscriptionsFile.model_validate(data, context=context)
    except ValidationError as exc:
        problems += [validation_problem(source, document, err) for err in exc.errors()]
    if problems:
        raise SubscriptionsError(sorted(problems, key=line_order), _HINT)
    return parsed


def _seed_checks(source: str, document: Any, data: Any, check: SeedCheck) -> list[str]:
    """What `check` says of each `like:` seed, rules' and topics', where the file has it."""
    bodies: list[tuple[tuple[Any, ...], Any]] = []
    topics = data.get("topics")
    if isinstance(topics, dict):
        bodies += [(("topics", name), body) for name, body in topics.items()]
    for i, sub in _items(data.get("subscribers")):
        bodies += [(("subscribers", i, "rules", j), rule) for j, rule in _items(sub.get("rules"))]
    problems = []
    for where, body in bodies:
        seeds = body.get("like") if isinstance(body, dict) else None
        for k, seed in enumerate(seeds if isinstance(seeds, list) else []):
            if isinstance(seed, str) and (message := check(seed)):
                problems.append(problem_line(source, document, (*where, "like", k), message))
    return problems


def _cross_checks(source: str, document: Any, data: dict[str, Any]) -> list[str]:
    """What one field cannot check alone: topic references and duplicate subscribers.

    Runs on the raw data, so these come out together with every field error.
    """
    topics = data.get("topics")
    known = set(topics) if isinstance(topics, dict) else set()
    problems = []
    seen: dict[str, int] = {}
    for i, sub in _items(data.get("subscribers")):
        for j, rule in _items(sub.get("rules")):
            names = rule.get("topics")
            for k, topic in enumerate(names if isinstance(names, list) else []):
                if isinstance(topic, str) and topic not in known:
                    listed = ", ".join(sorted(known)) or "none are defined"
                    where: tuple[str | int, ...] = ("subscribers", i, "rules", j, "topics", k)
                    message = f"unknown topic {topic!r} ({listed})"
                    problems.append(problem_line(source, document, where, message))
        try:
            email = normalise_address(str(sub.get("email", "")))
        except ValueError:
            continue  # reported by the field check
        # Normalised: the domain is lower-cased, the local part kept as written.
        if email in seen:
            message = f"{email} is already subscribed at subscribers[{seen[email]}]"
            problems.append(problem_line(source, document, ("subscribers", i, "email"), message))
        else:
            seen[email] = i
    return problems


def _items(value: Any) -> list[tuple[int, dict[str, Any]]]:
    """The mappings of a list, with their indexes; anything else the field checks report."""
    if not isinstance(value, list):
        return []
    return [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]
