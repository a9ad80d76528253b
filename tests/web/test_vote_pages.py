"""Tests for the vote pages: what a vote link shows, what its POST records, and what a
hostile title or a forged link cannot do (real uvicorn on loopback, real SQLite)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import httpx
from conftest import db_fingerprint
from helpers import HOSTILE, prepare
from served import KEY, ONE_CLICK, serving
from sqlalchemy import Engine
from sqlmodel import Session, select

from digestbot import tokens
from digestbot.rules import readers
from digestbot.rules.subscribers import active_subscribers
from digestbot.settings import Settings
from digestbot.store.engine import write_session
from digestbot.store.tables import PaperRow


def a_paper(engine: Engine) -> PaperRow:
    with Session(engine) as session:
        return session.exec(select(PaperRow).order_by(PaperRow.id)).first()  # type: ignore[arg-type,return-value]


def test_a_vote_link_shows_the_paper_with_both_buttons_its_own_preselected(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """GET shows the title, a link to the paper and the two buttons, the link's vote the
    primary one; nothing is recorded."""
    prepare(engine, clock, count=1)
    reader, paper = active_subscribers(engine)[0], a_paper(engine)
    with serving(settings, engine) as site:
        down = httpx.get(tokens.vote_url(site.url, KEY, reader.id, paper.id, "down", "daily:x"))
    assert down.status_code == 200
    assert 'value="down" class="primary" autofocus>Not relevant' in down.text
    assert 'value="up">More like this' in down.text
    assert readers.votes(engine) == []


def test_posting_a_vote_records_it_with_its_digest_and_the_latest_wins(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A POST without a field records the link's vote; the other button's POST replaces it;
    each says thank you."""
    prepare(engine, clock, count=1)
    reader, paper = active_subscribers(engine)[0], a_paper(engine)
    with serving(settings, engine, clock=clock) as site:
        link = tokens.vote_url(site.url, KEY, reader.id, paper.id, "up", "daily:2026-11-24")
        first = httpx.post(link)
        assert [(v.paper_id, v.vote) for v in readers.votes(engine)] == [(paper.id, "up")]
        second = httpx.post(link, content=b"vote=down", headers=ONE_CLICK)
    assert first.status_code == second.status_code == 200
    assert "Thank you" in second.text and "<strong>not relevant</strong>" in second.text
    (vote,) = readers.votes(engine)
    assert (vote.email, vote.vote, vote.digest) == (
        "reader0@example.org",
        "down",
        "daily:2026-11-24",
    )
    assert vote.voted_at == clock


def test_a_hostile_paper_title_is_shown_escaped(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """A title with markup and a header-injection attempt shows as text on the vote page
    and its thank-you page."""
    prepare(engine, clock, count=1)
    reader, paper = active_subscribers(engine)[0], a_paper(engine)
    with write_session(engine) as session:
        row = session.get(PaperRow, paper.id)
        assert row is not None
        row.title, row.links = HOSTILE, {"hf": "javascript:alert(1)"}
        session.add(row)
    with serving(settings, engine) as site:
        link = tokens.vote_url(site.url, KEY, reader.id, paper.id, "up", "daily:x")
        pages = [httpx.get(link), httpx.post(link)]
    for page in pages:
        assert "<script>" not in page.text and "javascript:" not in page.text
        assert "Evil &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text


def test_forged_vote_links_and_unknown_votes_get_a_400_page_and_change_nothing(
    engine: Engine, settings: Settings, clock: datetime
) -> None:
    """Another key's token, a cut one, an unsubscribe token and a vote that is neither up
    nor down are refused with a 400 page; the database is as it was."""
    prepare(engine, clock, count=1)
    reader, paper = active_subscribers(engine)[0], a_paper(engine)
    real = tokens.vote_token(KEY, reader.id, paper.id, "up", "daily:x")
    forged = [
        tokens.vote_token("another-key-just-as-long-as-ours", reader.id, paper.id, "up", "d"),
        real[:-3],
        tokens.unsubscribe_token(KEY, reader.id),
    ]
    path = Path(settings.database_url.removeprefix("sqlite:///"))
    before = db_fingerprint(path)
    with serving(settings, engine) as site:
        answers = [httpx.get(f"{site.url}/v/{t}") for t in forged]
        answers += [httpx.post(f"{site.url}/v/{t}") for t in forged]
        answers.append(httpx.post(f"{site.url}/v/{real}", content=b"vote=maybe", headers=ONE_CLICK))
    assert [a.status_code for a in answers] == [400] * 7
    assert all("othing was changed" in a.text for a in answers)
    assert db_fingerprint(path) == before
