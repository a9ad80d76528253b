"""Web stage: the pages readers' links open: unsubscribe in one click (RFC 8058) and a vote
on a paper. A GET only shows; only a POST changes anything, since link scanners GET every
link in a message."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import Engine
from sqlmodel import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from digestbot import service, tokens
from digestbot.ingest.links import web_url
from digestbot.rules import readers
from digestbot.settings import Settings
from digestbot.store.tables import PaperRow, SubscriberRow
from digestbot.web.pages import Pages

BAD_LINK = (
    "The link is incomplete or was altered on its way here, so nothing was changed. Open "
    "it again from the email, or copy the whole link into the address bar."
)
GONE = "This link belongs to a reader digestbot no longer knows: nothing was changed."
VOTE_WORDS = {"up": "More like this", "down": "Not relevant"}


@dataclass(frozen=True)
class Who:
    """The reader an unsubscribe link names, as its pages show them."""

    reader: readers.Reader
    frequency: str


@dataclass(frozen=True)
class ShownPaper:
    title: str
    url: str | None


class Links:
    """The endpoints of `/u/{token}` and `/v/{token}` over one database."""

    def __init__(
        self, settings: Settings, engine: Engine, pages: Pages, clock: Callable[[], datetime]
    ) -> None:
        self.key = settings.secret_key.get_secret_value()
        self.engine, self.pages, self.clock = engine, pages, clock

    def routes(self) -> list[Route]:
        return [
            Route("/u/{token}", self.unsubscribe_page, methods=["GET"]),
            Route("/u/{token}", self.unsubscribe, methods=["POST"]),
            Route("/u/{token}/resubscribe", self.resubscribe, methods=["POST"]),
            Route("/v/{token}", self.vote_page, methods=["GET"]),
            Route("/v/{token}", self.vote, methods=["POST"]),
        ]

    # -- unsubscribe ---------------------------------------------------------------------

    async def _who(self, token: str) -> Who:
        subscriber_id = tokens.read_unsubscribe(self.key, token)
        if subscriber_id is None:
            raise HTTPException(400, BAD_LINK)
        found = await run_in_threadpool(_who, self.engine, subscriber_id)
        if found is None:
            raise HTTPException(404, GONE)
        return found

    async def unsubscribe_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        who = await self._who(token)
        return self.pages.page("unsubscribe.html", token=token, who=who)

    async def unsubscribe(self, request: Request) -> Response:
        """Mail providers POST `List-Unsubscribe=One-Click`, the page's button the same; the
        signed token alone decides, so any POST to it unsubscribes."""
        token = request.path_params["token"]
        who = await self._who(token)
        await request.body()  # read first: a body over the limit is refused before acting
        done = await run_in_threadpool(
            service.unsubscribe, self.engine, who.reader.email, now=self.clock(), via="link"
        )
        return self.pages.page("unsubscribed.html", token=token, who=who, done=done)

    async def resubscribe(self, request: Request) -> Response:
        token = request.path_params["token"]
        who = await self._who(token)
        await request.body()  # read first: a body over the limit is refused before acting
        await run_in_threadpool(
            service.resubscribe, self.engine, who.reader.email, now=self.clock()
        )
        return self.pages.page("resubscribed.html", token=token, who=who)

    # -- votes ---------------------------------------------------------------------------

    async def _vote_token(self, token: str) -> tuple[tokens.VoteToken, ShownPaper]:
        said = tokens.read_vote(self.key, token)
        if said is None:
            raise HTTPException(400, BAD_LINK)
        paper = await run_in_threadpool(_paper, self.engine, said.paper_id)
        if paper is None:
            raise HTTPException(404, "digestbot no longer knows this paper: nothing was changed.")
        return said, paper

    async def vote_page(self, request: Request) -> Response:
        token = request.path_params["token"]
        said, paper = await self._vote_token(token)
        return self.pages.page(
            "vote.html", token=token, paper=paper, chosen=said.vote, words=VOTE_WORDS
        )

    async def vote(self, request: Request) -> Response:
        token = request.path_params["token"]
        said, paper = await self._vote_token(token)
        async with request.form(max_files=0, max_fields=8) as form:
            vote = form.get("vote", said.vote)
        if vote not in tokens.VOTES:
            raise HTTPException(400, "A vote is `up` or `down`: nothing was changed.")
        recorded = await run_in_threadpool(
            readers.record_vote,
            self.engine,
            said.subscriber_id,
            said.paper_id,
            str(vote),
            digest=said.digest,
            now=self.clock(),
        )
        if not recorded:
            raise HTTPException(404, GONE)
        return self.pages.page(
            "voted.html", token=token, paper=paper, chosen=vote, words=VOTE_WORDS
        )


def _who(engine: Engine, subscriber_id: int) -> Who | None:
    found = readers.reader(engine, subscriber_id)
    if found is None:
        return None
    with Session(engine) as session:
        row = session.get(SubscriberRow, subscriber_id)
        frequency = row.frequency if row is not None else "daily"
    return Who(found, frequency)


def _paper(engine: Engine, paper_id: str) -> ShownPaper | None:
    with Session(engine) as session:
        row = session.get(PaperRow, paper_id)
        if row is None:
            return None
        links = row.links or {}
        page = links.get("hf") or links.get("abs") or links.get("page")
        return ShownPaper(row.title, web_url(page))
