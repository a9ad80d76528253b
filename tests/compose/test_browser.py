"""Real-browser check: the HTML part in headless Chromium at phone and desktop widths.

Chromium is Debian's `chromium` package driven by Playwright (no `playwright install`). The
tests skip when it is missing, except under CI (env var CI set), where they fail. Screenshots
go to $DIGESTBOT_ARTIFACTS, else tests/artifacts/ (gitignored).
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from conftest import ARTIFACTS
from playwright.sync_api import Browser
from samples import fixture_digest

from digestbot.compose.render import make_environment, render_digest
from digestbot.models import Digest, DigestItem, Match, Paper, Rule, Subscriber

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def hostile_digest() -> Digest:
    """25 papers with long titles, non-ASCII names, LaTeX-ish fragments, unbroken tokens and
    markup, matched by several rules."""
    rules = (
        Rule("Efficient attention", any=("attention",)),
        Rule("Équations différentielles", any=("schrödinger", "équation*")),
        Rule("A rule with a rather long name that keeps going and going", any=("token*",)),
    )
    sub = Subscriber(3, "zoë@example.org", "Zoë Ødegård-Łukasiewicz", rules)
    titles = [
        "Sub-quadratic $\\mathcal{O}(n \\log n)$ Attention via \\textbf{Hierarchical} Kernels",
        "Ünïcödé Tökenizers: Schrödinger-Équation Solvers für Übermäßig Lange Sequenzen",
        "Supercalifragilisticexpialidociousattentionmechanismwithoutanyspacesatallforeverandever",
        "<script>alert('x')</script> Attention &amp; Friends \u2014 \u201cquoted\u201d",
        "A Very Long Title " * 8 + "About Attention",
        "注意力机制的高效实现 \uff1a 线性注意力与稀疏注意力 attention",
        "Attention for $\\sum_{i=1}^{N} \\alpha_i \\cdot \\mathbf{x}_i$ and $\\nabla_\\theta$",
    ]
    authors = (
        "Zoë Ødegård",
        "Łukasz Żółć",
        "Nguyễn Thị Minh Khai",
        "José María Pérez-García",
        "山田 太郎",
    )
    abstract = (
        "We study attention in the regime $T \\gg d$ where https://example.org/a/very/long/"
        "unbroken/path/that/never/ends/and/keeps/on/going/for/ever/and/ever/index.html shows "
        "tokens <b>bold</b> and the Schrödinger équation with ℏ → 0. " * 4
    )
    items = []
    for i in range(25):
        paper = Paper(
            id=f"h{i}",
            title=f"{titles[i % len(titles)]} ({i + 1})",
            abstract=abstract,
            first_seen=NOW - timedelta(hours=1),
            published=date(2025, 1, 1 + i),
            upvotes=i * 7 if i % 3 else None,
            comments=i % 4 or None,
            authors=authors[: 1 + i % 5],
            links=(
                ("hf", f"https://huggingface.co/papers/2501.{i:05d}"),
                ("pdf", f"https://arxiv.org/pdf/2501.{i:05d}"),
                ("code", "javascript:alert(1)" if i % 2 else "https://github.com/o/r"),
            ),
        )
        rule = rules[i % 3]
        terms = rule.terms()[:1]
        items.append(DigestItem(paper, Match((rule.name,), terms, terms, 11.0 + i % 4)))
    return Digest(sub, tuple(items), NOW, "manual:hostile", left_out=("a", "b", "c"))


DIGESTS = {"listings": lambda: fixture_digest(NOW), "hostile": hostile_digest}


@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [375, 1024])
@pytest.mark.parametrize("which", sorted(DIGESTS))
def test_it_fits_the_screen_and_shows_every_title(
    browser: Browser, which: str, width: int, scheme: str
) -> None:
    """No horizontal overflow, every title visible within the viewport, the preheader hidden,
    the colour scheme honoured, no network request; a full-page screenshot is saved."""
    digest = DIGESTS[which]()
    html = render_digest(make_environment(), digest, unsubscribe="https://example.org/u").html
    page = browser.new_page(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        requested: list[str] = []
        page.route("**/*", lambda route: (requested.append(route.request.url), route.abort()))
        page.set_content(html, wait_until="load")
        scroll, inner = page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        assert scroll <= inner, f"horizontal overflow: {scroll}px content in {inner}px"
        titles = page.locator("h2.title")
        assert titles.count() == len(digest.items)
        for k in range(titles.count()):
            title = titles.nth(k)
            box = title.bounding_box()
            assert title.is_visible() and box is not None, f"title {k} is hidden"
            assert box["width"] > 0 and box["height"] > 0
            assert box["x"] >= 0 and box["x"] + box["width"] <= inner, f"title {k} overflows"
        assert not page.locator(".preheader").is_visible()
        background = page.evaluate("getComputedStyle(document.body).backgroundColor")
        assert background == {"light": "rgb(238, 240, 243)", "dark": "rgb(13, 17, 23)"}[scheme]
        assert requested == []
        ARTIFACTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ARTIFACTS / f"{which}-{width}-{scheme}.png"), full_page=True)
    finally:
        page.close()
