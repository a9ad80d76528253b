"""Web stage: the pages, rendered from templates/web with every value escaped."""

from __future__ import annotations

from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.responses import HTMLResponse

from digestbot.compose.footer import cadence
from digestbot.resources import bundled_path

# No scripts, no frames, no outside resources; forms post back to this site only.
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
        "base-uri 'none'; frame-ancestors 'none'"
    ),
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
    # A page names a reader's address: no shared cache may keep it.
    "Cache-Control": "no-store",
}

ERRORS = {
    400: ("This link does not work", "Nothing was changed."),
    404: ("Not found", "There is no page at this address."),
    405: ("Not allowed", "This address does not answer that kind of request."),
    413: ("Too large", "A request here holds at most 4 KiB."),
    500: ("Something went wrong", "Nothing was shown of it here; it is in the server's log."),
}


class Pages:
    """The templates of the web pages, loaded once when the app is built."""

    def __init__(self) -> None:
        self.env = Environment(
            loader=FileSystemLoader(bundled_path("templates") / "web"),
            autoescape=True,
            undefined=StrictUndefined,
            keep_trailing_newline=True,
        )
        self.env.filters["cadence"] = cadence

    def page(self, name: str, status: int = 200, **context: Any) -> HTMLResponse:
        """The template `name` rendered with `context`, with the site's security headers."""
        html = self.env.get_template(name).render(**context)
        return HTMLResponse(html, status_code=status, headers=HEADERS)

    def error(self, status: int, message: str | None = None) -> HTMLResponse:
        """The error page for `status`, saying `message` (else what such an error means)."""
        title, meaning = ERRORS.get(status, ERRORS[500])
        return self.page("error.html", status, title=title, message=message or meaning)
