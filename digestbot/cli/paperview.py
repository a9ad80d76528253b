"""CLI: the papers view, what `papers list` and `papers show` print of the stored papers."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

import typer
from rich.text import Text
from sqlalchemy import Engine

from digestbot.addresses import normalise_address
from digestbot.cli import likeview
from digestbot.cli.common import friendly, load_settings, open_engine, out, papers_app
from digestbot.cli.likeview import Why
from digestbot.compose.present import title_search
from digestbot.compose.words import plural
from digestbot.errors import ConfigError
from digestbot.ingest import enrichstore, papers
from digestbot.ingest.textnorm import safe_text
from digestbot.models import Match, Paper
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings

DEFAULT_LIMIT = 50
SHORT_ID = 8  # characters of a stored id that is not an arXiv id (`t-` and a title hash)
MIN_TITLE = 12  # columns a title keeps however narrow the terminal


@papers_app.command("list", short_help="List ingested papers, latest ingested first.")
@friendly
def papers_list(
    since: Annotated[
        datetime | None,
        typer.Option(metavar="DAY", help="Only papers first seen on or after this day."),
    ] = None,
    limit: Annotated[
        int | None,
        typer.Option(
            min=1,
            metavar="N",
            help=f"Show at most this many papers (default {DEFAULT_LIMIT}; JSON: all).",
        ),
    ] = None,
    match: Annotated[
        str | None,
        typer.Option(
            metavar="EMAIL",
            help="Only the papers this subscriber's rules select, ranked as a digest.",
        ),
    ] = None,
    like: Annotated[
        str | None,
        typer.Option(
            metavar="TEXT_OR_ID",
            help="Rank by similarity to a stored paper (id, arXiv id or title) or to a text.",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print a JSON list.")] = False,
) -> None:
    """List ingested papers, latest ingested first (with --match, best match first; with
    --like, most alike first): one line each with its short id (what `papers show` takes),
    published date, upvotes and title."""
    if match is not None and like is not None:
        raise typer.BadParameter("--match and --like rank differently: give one of them")
    settings = load_settings()
    start = None if since is None else since.replace(tzinfo=since.tzinfo or UTC)
    with open_engine(settings) as engine:
        rows = papers.papers_seen_since(
            engine, None if start is None else start - timedelta(microseconds=1)
        )
        listed: list[tuple[Paper, Why | None]]
        if like is not None:
            listed = list(likeview.alike(engine, settings, like, rows))
        elif match is not None:
            matched = _matched(engine, match, rows)
            listed = [(p, Why(f"matched {_why(m)}", {"match": _match_json(m)})) for p, m in matched]
        else:
            listed = [(p, None) for p in rows]
    if as_json:
        shown = listed if limit is None else listed[:limit]
        objects = [_paper_json(p) | (why.fields if why else {}) for p, why in shown]
        out.print_json(json.dumps(_printable(objects), ensure_ascii=False))
        return
    _print_lines(listed, limit or DEFAULT_LIMIT, out.width)


def _matched(engine: Engine, email: str, rows: Sequence[Paper]) -> list[tuple[Paper, Match]]:
    """The papers among `rows` that the subscriber's rules select, ranked as their digest
    ranks them (best score first, then upvotes, then title)."""
    try:
        address = normalise_address(email)
    except ValueError as exc:
        raise ConfigError(f"--match: {exc}", "give a subscriber's email address") from None
    found = active_subscribers(engine, [address])
    if not found:
        raise ConfigError(
            f"no subscriber {address}",
            "check the address, or add it to the subscriptions file and run "
            "`digestbot subscriptions sync`",
        )
    index = PaperIndex(rows)
    ranked, _ = Matcher(index).top(found[0], index.everything, max(1, len(rows)))
    return ranked


def short_id(paper: Paper) -> str:
    """The id `papers list` prints: the arXiv id, else the start of the stored id."""
    return paper.arxiv_id or paper.id[:SHORT_ID]


def fit(text: str, width: int) -> str:
    """`text` on one line of at most `width` cells, cut with … when longer."""
    line = Text(safe_text(text))
    line.truncate(max(1, width), overflow="ellipsis")
    return line.plain


def _print_lines(listed: Sequence[tuple[Paper, Why | None]], limit: int, width: int) -> None:
    """A header, then one line per paper (and under it, with --match or --like, why it is
    there), each at most `width` cells; then how many were left out."""
    shown = listed[:limit]
    id_width = max([len("id"), *(len(short_id(p)) for p, _ in shown)])
    title_width = max(MIN_TITLE, width - id_width - len("  published   upvotes  "))
    out.print(fit(f"{'id':<{id_width}}  published   upvotes  title", width), markup=False)
    for paper, why in shown:
        published = paper.published.isoformat() if paper.published else ""
        upvotes = "" if paper.upvotes is None else str(paper.upvotes)
        title = fit(" ".join(paper.title.split()), title_width)
        line = f"{short_id(paper):<{id_width}}  {published:<10}  {upvotes:>7}  {title}"
        out.print(fit(line, width), markup=False)
        if why is not None:
            out.print(fit(f"{' ' * id_width}  {why.line}", width), markup=False)
    if not listed:
        out.print("No papers.", markup=False)
    elif len(listed) > limit:
        out.print(f"… {len(listed) - limit} more; use --limit", markup=False)


def _why(match: Match) -> str:
    """`Transformers (transformer, attention)`: the rules that selected a paper and the
    terms that matched."""
    reasons = (*match.terms, *match.similar)
    terms = f" ({', '.join(reasons)})" if reasons else ""
    return "; ".join(match.rules) + terms


@papers_app.command("show", short_help="Print one paper whole.")
@friendly
def papers_show(
    paper_id: Annotated[str, typer.Argument(metavar="ID", hidden=True)],
) -> None:
    """Print one paper whole: title, authors, dates, upvotes, categories, links, sources
    and the abstract. ID is a paper's id as `papers list` prints it."""
    settings = load_settings()
    with open_engine(settings) as engine:
        found = papers.papers_named(engine, paper_id.strip())
        one = found[0] if len(found) == 1 else None
        lookup = _lookup(engine, settings, one.id) if one and not one.arxiv_id else ""
    hint = "run `digestbot papers list` to see the ids"
    if not found:
        raise ConfigError(f"no paper {paper_id}", hint)
    if len(found) > 1:
        ids = ", ".join(p.id for p in found[:5]) + (", …" if len(found) > 5 else "")
        raise ConfigError(f"{paper_id} names {len(found)} papers: {ids}", "give more of the id")
    for line in paper_lines(found[0], max(40, out.width), lookup=lookup):
        out.print(line, markup=False)


def _lookup(engine: Engine, settings: Settings, paper_id: str) -> str:
    """Where the arXiv lookup of a title-only paper stands."""
    last = enrichstore.last_lookup(engine, paper_id)
    if last is None:
        return "waiting"
    again = (last.tried_at + timedelta(days=settings.enrich_retry_days)).date()
    found = f"found as {last.arxiv_id}, stored under that id" if last.arxiv_id else "not found"
    why = f" ({last.detail})" if last.detail else ""
    return f"{found} on {last.tried_at.date()}{why}; tried again from {again}"


def paper_lines(p: Paper, width: int, *, lookup: str = "") -> list[str]:
    """The lines `papers show` prints for `p`, wrapped at `width`; `lookup` says where its
    arXiv lookup stands when it has no arXiv id."""
    links = [f"{kind}: {url}" for kind, url in p.links]
    if not p.arxiv_id and not p.page():
        links.append(f"search: {title_search(p.title)}")
    fields: list[tuple[str, str]] = [
        ("id", p.id + (f" (arXiv {p.arxiv_id})" if p.arxiv_id and p.arxiv_id != p.id else "")),
        ("authors", ", ".join(p.authors) or _known(p.author_count, "author")),
        ("organisation", p.organisation or ""),
        ("published", p.published.isoformat() if p.published else "unknown"),
        ("first seen", p.first_seen.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")),
        ("upvotes", "" if p.upvotes is None else str(p.upvotes)),
        ("comments", "" if p.comments is None else str(p.comments)),
        ("categories", " ".join(p.categories)),
        *_listed("links", links),
        ("arXiv lookup", lookup),
        *_listed("sources", list(p.sources)),
    ]
    lines = textwrap.wrap(safe_text(p.title), width) or [""]
    lines.append("")
    indent = " " * (len("organisation") + 2)
    for name, value in fields:
        if value:
            lines += textwrap.wrap(
                safe_text(value),
                width,
                initial_indent=f"{name + ':' if name else '':<{len(indent)}}",
                subsequent_indent=indent,
                break_on_hyphens=False,
                break_long_words=False,
            )
    lines.append("")
    lines += textwrap.wrap(safe_text(p.abstract), width) or ["(no abstract)"]
    return lines


def _listed(name: str, values: Sequence[str]) -> list[tuple[str, str]]:
    """One field per value, the name on the first only."""
    return [(name if n == 0 else "", value) for n, value in enumerate(values)]


def _printable(value: Any) -> Any:
    """A JSON value with every string cleaned for the terminal (JSON would keep C1 and bidi
    controls as they are, and escaped C0 ones come back whole to whoever reads it)."""
    if isinstance(value, str):
        return safe_text(value)
    if isinstance(value, dict):
        return {k: _printable(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_printable(v) for v in value]
    return value


def _match_json(match: Match) -> dict[str, Any]:
    return {
        "rules": list(match.rules),
        "terms": list(match.terms),
        "similar": list(match.similar),
        "score": match.score,
    }


def _paper_json(p: Paper) -> dict[str, Any]:
    return {
        "id": p.id,
        "short_id": short_id(p),
        "arxiv_id": p.arxiv_id,
        "title": p.title,
        "authors": list(p.authors),
        "author_count": p.author_count,
        "organisation": p.organisation,
        "published": p.published.isoformat() if p.published else None,
        "first_seen": p.first_seen.isoformat(),
        "upvotes": p.upvotes,
        "comments": p.comments,
        "categories": list(p.categories),
        "links": dict(p.links),
        "sources": list(p.sources),
        "abstract": p.abstract,
    }


def _known(n: int | None, noun: str) -> str:
    """`3 upvotes`, or nothing when unknown."""
    return "" if n is None else plural(n, noun)
