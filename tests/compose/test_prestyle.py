"""The bundled templates' styles, worked out when they compile, are the ones inlining gives."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from datetime import UTC, datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from jinja2 import Environment
from samples import fixture_digest

from digestbot.compose.prestyle import attributes, style_of
from digestbot.compose.render import Rendered, make_environment, render_admin, render_digest
from digestbot.compose.votes import VoteLinks
from digestbot.errors import ConfigError
from digestbot.models import Digest, DigestItem, Match, Paper, Subscriber
from digestbot.resources import bundled_path

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)
CSS = "td.card { padding: 4px; } .footer a { color: red; } p { margin: 0; } p.x { margin: 1px; }"

Element = tuple[str, tuple[tuple[str, str], ...], tuple[str, ...]]


class Elements(HTMLParser):
    """Each start tag in order (its attributes, its style as declarations) and the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[Element] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "tbody":  # the HTML parser behind css-inline adds it to every table
            return
        found = dict(attrs)
        style = tuple(d.strip() for d in (found.pop("style", None) or "").split(";") if d)
        self.found.append((tag, tuple(sorted((k, v or "") for k, v in found.items())), style))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def parsed(html: str) -> tuple[list[Element], str]:
    elements = Elements()
    elements.feed(html)
    return elements.found, " ".join(" ".join(elements.text).split())


def a_hostile_digest() -> Digest:
    sub = Subscriber(1, "eve@example.org", 'Eve "<b>"', ())
    paper = Paper(
        "p1",
        'Evil <script>alert("x")</script> attention',
        "<img src=x> attention, & more attention " * 12,
        NOW,
        links=(("hf", "https://huggingface.co/papers/1"), ("pdf", "https://arxiv.org/pdf/1")),
        authors=("A <b>", "B"),
        upvotes=3,
    )
    match = Match(("<rule>",), ("attention",), ("attention",), 2.0)
    return Digest(sub, (DigestItem(paper, match),), NOW, "manual:x", left_out=("a", "b"))


def voted(digest: Digest) -> dict[str, VoteLinks]:
    """Vote links for every paper of `digest`."""
    return {
        i.paper.id: VoteLinks(f"https://x.example/v/u{n}", f"https://x.example/v/d{n}")
        for n, i in enumerate(digest.items)
    }


EMAILS: dict[str, Callable[[Environment], Rendered]] = {
    "digest": lambda env: render_digest(env, fixture_digest(NOW), unsubscribe="https://u.example"),
    "alert": lambda env: render_digest(env, replace(fixture_digest(NOW), kind="alert")),
    "votes": lambda env: render_digest(env, fixture_digest(NOW), votes=voted(fixture_digest(NOW))),
    "hostile": lambda env: render_digest(env, a_hostile_digest()),
    "admin": lambda env: render_admin(env, "Down", "a\nb <c>", recipient="o@x.org", now=NOW),
}


@pytest.mark.parametrize("email", sorted(EMAILS))
def test_each_element_carries_the_style_inlining_the_email_would_give_it(email: str) -> None:
    """Rendered with no inlining, every element of the bundled templates has the style
    attribute, and the same text, that css-inline gives the same email from email.css."""
    prestyled = EMAILS[email](make_environment()).html
    inlined = EMAILS[email](make_environment(inline_css=True)).html
    assert prestyled.count(' style="') > 10
    assert parsed(prestyled) == parsed(inlined)


def test_a_style_comes_from_the_rules_for_the_element_and_its_ancestors() -> None:
    """style_of reads the element's cascade from the stylesheet, ancestors included."""
    assert style_of(CSS, "td.card") == "padding:4px"
    assert style_of(CSS, "td.footer a") == "color:red"
    assert style_of(CSS, "a") == ""
    assert style_of(CSS, "td.footer p.x") == "margin:1px"


def test_templates_of_ones_own_are_styled_from_the_stylesheet_as_they_render(
    tmp_path: Path,
) -> None:
    """With DIGESTBOT_TEMPLATES_DIR, an element styled only by its class gets its style
    attribute when the email renders, as before templates were styled when compiled."""
    (tmp_path / "alert.html").write_text(
        '{% extends "layout.html" %}{% block title %}t{% endblock %}'
        '{% block content %}<tr><td class="card">mine</td></tr>{% endblock %}'
    )
    html = EMAILS["alert"](make_environment(tmp_path)).html
    assert '<td class="card" style="background-color:#ffffff;' in html
    assert "mine" in html and "<style>" not in html


def test_a_stylesheet_of_ones_own_restyles_the_bundled_templates(tmp_path: Path) -> None:
    """The README's example: a copied email.css with other colours styles every email."""
    bundled = bundled_path("templates") / "email.css"
    css = bundled.read_text().replace(
        ".card { background-color: #ffffff;", ".card { background-color: #abcdef;"
    )
    (tmp_path / "email.css").write_text(css)
    for email in EMAILS:
        assert (
            'class="card" style="background-color:#abcdef;'
            in EMAILS[email](make_environment(tmp_path)).html
        ), email


def test_a_styled_tag_without_a_quoted_path_is_a_template_error(tmp_path: Path) -> None:
    """`{% styled name %}` (not a literal path) fails as a template error with its hint."""
    (tmp_path / "alert.html").write_text("{% styled card %}")
    with pytest.raises(ConfigError, match="styled takes a quoted element path"):
        EMAILS["alert"](make_environment(tmp_path, inline_css=False))


def test_the_class_and_style_are_escaped_into_their_attributes() -> None:
    """Quotes and ampersands in a style cannot end its attribute."""
    assert attributes("td.a.b", 'font-family:"A&B"') == (
        'class="a b" style="font-family:&#34;A&amp;B&#34;"'
    )
    assert attributes("code", "") == ""
