"""Compose stage (pure): the bundled templates' inline styles, worked out once per template
when Jinja compiles it, by css-inline itself from email.css, instead of once per email.

`<td {% styled "td.card" %}>` compiles to `<td class="card" style="…">`, the style being what
css-inline gives a `td.card` in a document styled by email.css; the last word of the path is
the element, the words before it its ancestors (`{% styled "td.footer a" %}` for a link in
the footer). When the environment's `inline_css` global is on (the user has templates of
their own) it writes only the class, and every email is inlined as it renders instead.
"""

from __future__ import annotations

from functools import lru_cache
from html.parser import HTMLParser

import css_inline
from jinja2 import nodes
from jinja2.ext import Extension
from jinja2.parser import Parser
from markupsafe import escape

STYLESHEET = "email.css"  # the template whose rules the styles come from
_PROBE = "data-digestbot-probe"
_TABLE_CELLS = ("td", "th")


class Styled(Extension):
    """The `{% styled "ancestors element" %}` tag: the element's class and inline style."""

    tags = {"styled"}  # noqa: RUF012 (Jinja reads the class attribute)

    def parse(self, parser: Parser) -> nodes.Output:
        lineno = next(parser.stream).lineno
        path = parser.parse_expression()
        if not (
            isinstance(path, nodes.Const) and isinstance(path.value, str) and path.value.split()
        ):
            parser.fail('styled takes a quoted element path, like {% styled "td.footer p" %}')
        if self.environment.globals.get("inline_css", False):
            style = ""  # the whole email is inlined when it renders
        else:
            loader = self.environment.loader
            if loader is None:
                parser.fail(
                    f"styled reads {STYLESHEET} through the template loader, and there is none"
                )
            css, _, _ = loader.get_source(self.environment, STYLESHEET)
            style = style_of(css, path.value)
        return nodes.Output([nodes.TemplateData(attributes(path.value, style))], lineno=lineno)


def attributes(path: str, style: str) -> str:
    """`class="…" style="…"` for the last element of `path`, each only when not empty."""
    _, classes = _step(path.split()[-1])
    found = [f'class="{escape(" ".join(classes))}"'] if classes else []
    if style:
        found.append(f'style="{escape(style)}"')
    return " ".join(found)


# One entry: an element path of the templates and its style, ~3 KiB; the bundled templates
# have about 30, so 512 (~1.5 MiB) leaves room for a user's own.
@lru_cache(maxsize=512)
def style_of(css: str, path: str) -> str:
    """The style attribute css-inline gives the last element of `path` (`tag.class…`
    words, outermost first) in a page styled by `css`."""
    steps = [_step(word) for word in path.split()]
    opening: list[str] = []
    closing: list[str] = []
    for depth, (tag, classes) in enumerate(steps):
        probe = f" {_PROBE}" if depth == len(steps) - 1 else ""
        attrs = f' class="{" ".join(classes)}"' if classes else ""
        if tag == "body":
            opening.append(f"<body{attrs}{probe}>")
            closing.insert(0, "</body>")
            continue
        # A cell outside a table is dropped by the HTML parser: give it one.
        wrap = ("<table><tr>", "</tr></table>") if tag in _TABLE_CELLS else ("", "")
        opening.append(f"{wrap[0]}<{tag}{attrs}{probe}>")
        closing.insert(0, f"</{tag}>{wrap[1]}")
    body = "".join(opening) + "x" + "".join(closing)
    if not body.startswith("<body"):
        body = f"<body>{body}</body>"
    page = f"<html><head><style>{css}</style></head>{body}</html>"
    found = _ProbeStyle()
    found.feed(INLINER.inline(page))
    return found.style


def _step(word: str) -> tuple[str, tuple[str, ...]]:
    tag, *classes = word.split(".")
    return tag or "div", tuple(classes)


class _ProbeStyle(HTMLParser):
    """Reads the style attribute of the probed element."""

    style = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if _PROBE in found:
            self.style = found.get("style") or ""


# One inliner for the styles worked out here and for emails inlined as they render: the
# rules of the plain <style> move into style attributes (what most mail clients honour); the
# <style data-css-inline="keep"> with the @media rules (dark mode, narrow screens) stays
# where it is; nothing is fetched.
INLINER = css_inline.CSSInliner(minify_css=True, load_remote_stylesheets=False)
