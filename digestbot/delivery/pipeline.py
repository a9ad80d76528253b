"""Delivery stage: render and enqueue digests chunk by chunk while committed chunks are sent.

Rendering (three templates and the MIME message) costs milliseconds a digest, so for a big
batch it runs in a separate process (DIGESTBOT_RENDER_PROCESSES) on another core; each chunk
is committed as pending rows before its ids reach the senders.
"""

from __future__ import annotations

import asyncio
import functools
from collections import deque
from collections.abc import AsyncGenerator, Callable, Iterable, Iterator, Sequence
from contextlib import aclosing
from datetime import datetime
from functools import lru_cache
from itertools import chain, islice
from pathlib import Path

from jinja2 import Environment
from sqlalchemy import Engine
from sqlmodel import Session

from digestbot import tokens
from digestbot.addresses import smtp_address
from digestbot.compose.render import (
    Envelope,
    build_message,
    header_safe,
    make_environment,
    message_id,
    render_digest,
    unsubscribe_target,
)
from digestbot.compose.votes import VoteLinks
from digestbot.delivery import outbox, processes
from digestbot.delivery.send import Feed
from digestbot.delivery.transport import Outbound
from digestbot.models import Digest
from digestbot.settings import Settings
from digestbot.store.thread import DbThread

FIRST_CHUNK = 8  # digests in the first commit, so sending starts at once
CHUNK = 100  # digests per commit after that
AHEAD = 3  # chunks being rendered at once in the render process
# Render processes repay their start (about half a second) only for a batch bigger than this.
SPREAD_OVER = FIRST_CHUNK + CHUNK


def start_render_server(settings: Settings, batch: int) -> None:
    """Start the fork server now when a batch of up to `batch` digests will have render
    processes, so that its imports (~0.45 s on another core) overlap reading the state
    instead of holding up the first email (bench_delivery: it came 0.35 s sooner)."""
    if (
        settings.render_processes
        and batch > SPREAD_OVER
        and processes.context() is not processes.SPAWN
    ):
        processes.start_fork_server()


def render_outgoing(
    env: Environment, settings: Settings, digest: Digest, *, now: datetime
) -> outbox.Outgoing:
    """The render step, on its own: the delivery row for one digest, rendered with its
    headers fixed, the message as the bytes that are sent (and that `preview` shows)."""
    if digest.problem is not None:
        return _failed(settings, digest, digest.problem)
    try:
        return _rendered_outgoing(env, settings, digest, now=now)
    except MemoryError:
        raise
    except Exception as exc:
        # One subscriber's address or text must not stop everyone's digest: theirs fails.
        return _failed(settings, digest, f"could not render: {exc.__class__.__name__}: {exc}")


def _rendered_outgoing(
    env: Environment, settings: Settings, digest: Digest, *, now: datetime
) -> outbox.Outgoing:
    sub = digest.subscriber
    key = settings.secret_key.get_secret_value()
    signed = settings.public_url and tokens.unsubscribe_url(settings.public_url, key, sub.id)
    rendered = render_digest(
        env,
        digest,
        unsubscribe=unsubscribe_target(settings.from_address, sub.email, signed or None),
        contact=settings.reader_contact,
        votes=_vote_links(settings.public_url, key, digest) if settings.public_url else None,
    )
    envelope = Envelope(
        sender=smtp_address(settings.from_address),
        sender_name=settings.from_name,
        recipient=smtp_address(sub.email),
        recipient_name=sub.name,
        message_id=message_id(digest.kind, sub.email, digest.period_key, settings.from_domain),
        date=now,
        unsubscribe_url=signed or None,
    )
    raw = build_message(rendered, envelope)
    return outbox.Outgoing(
        subscriber_id=sub.id,
        kind=digest.kind,
        period_key=digest.period_key,
        message_id=envelope.message_id,
        # The envelope is stored beside the message, never parsed back from its headers.
        outbound=Outbound(raw, envelope.sender, (envelope.recipient,)),
        paper_ids=tuple(item.paper.id for item in digest.items),
        left_out=digest.left_out,
    )


def _vote_links(public_url: str, key: str, digest: Digest) -> dict[str, VoteLinks]:
    """Each paper's "more like this" and "not relevant" links, signed for this reader and
    this digest (its period key), so a vote says which email it came from."""
    sid, period = digest.subscriber.id, digest.period_key
    return {
        item.paper.id: VoteLinks(
            up=tokens.vote_url(public_url, key, sid, item.paper.id, "up", period),
            down=tokens.vote_url(public_url, key, sid, item.paper.id, "down", period),
        )
        for item in digest.items
    }


def _failed(settings: Settings, digest: Digest, problem: str) -> outbox.Outgoing:
    """The row of a digest that could not be planned or rendered: stored `failed`, with why."""
    sub = digest.subscriber
    return outbox.Outgoing(
        subscriber_id=sub.id,
        kind=digest.kind,
        period_key=digest.period_key,
        message_id=message_id(digest.kind, sub.email, digest.period_key, settings.from_domain),
        outbound=Outbound(b"", settings.from_address, (sub.email,)),
        paper_ids=tuple(item.paper.id for item in digest.items),
        problem=header_safe(problem)[:500],
    )


# One entry: a Jinja environment with its compiled templates (~110 KiB) per templates folder
# and reload mode; a process uses one or two, so 4 is ~0.5 MiB at most.
@lru_cache(maxsize=4)
def _environment(templates_dir: Path | None, reload: bool = True) -> Environment:
    return make_environment(templates_dir, auto_reload=reload)


def render_chunk(
    settings: Settings, digests: Sequence[Digest], now: datetime, *, reload: bool = True
) -> list[outbox.Outgoing]:
    """Render a chunk of digests (in the render process: everything here is picklable).

    Render processes pass `reload=False`: they live for one batch, so they read each
    template once instead of checking five template files for edits at every digest
    (about 0.15 ms a digest); a long-lived process keeps picking up edits.
    """
    env = _environment(settings.templates_dir, reload)
    return [render_outgoing(env, settings, digest, now=now) for digest in digests]


# What a chunk's commit writes beside its rows, given its subscribers and whether it is the
# first commit of the batch (the scheduler's period ledger): a writer, or None for nothing.
ChunkWrites = Callable[[Sequence[int], bool], Callable[[Session], None] | None]


async def enqueue_in_chunks(
    engine: Engine,
    settings: Settings,
    digests: Iterable[Digest],
    *,
    now: datetime,
    token: int,
    feed: Feed,
    db: DbThread,
    send_empty: bool = False,
    also: ChunkWrites | None = None,
) -> None:
    """Render and commit the non-empty digests chunk by chunk, handing each chunk's rows to
    `feed`; the first commit checks `token`, later ones that nobody else enqueued meanwhile.

    `digests` is taken lazily, a chunk at a time; each commit runs on the database thread
    `db`. `also` adds each commit's other writes;
    when there is nothing to send, what it gives for the first commit is committed alone.
    A cancelled feed (the server is unreachable) stops it at the next chunk: what was
    committed stays pending; the rest was never decided.
    """
    wanted = (
        d for d in digests if d.items or d.problem or (send_empty and d.subscriber.send_empty)
    )
    chunks = _chunks(wanted)
    head = _head(chunks, SPREAD_OVER)
    if not head:
        alone = also((), True) if also else None
        if alone is not None:
            await db.run(outbox.enqueue, engine, [], now=now, token=token, also=alone)
        return
    spread = sum(map(len, head)) > SPREAD_OVER
    last: int | None = None
    async with aclosing(_rendered(settings, chain(head, chunks), now, spread)) as rendered:
        async for outgoing in rendered:
            if feed.cancelled:
                return
            first = last is None
            ids = await db.run(
                outbox.enqueue,
                engine,
                outgoing,
                now=now,
                token=token if first else None,
                after=last,
                also=also([o.subscriber_id for o in outgoing], first) if also else None,
            )
            feed.put([i for i, o in zip(ids, outgoing, strict=True) if o.problem is None])
            feed.unsendable.extend((o.subscriber_id, o.problem) for o in outgoing if o.problem)
            last = max(ids)


def _head(chunks: Iterator[list[Digest]], limit: int) -> list[list[Digest]]:
    """The first chunks, until they hold more than `limit` digests or run out."""
    head: list[list[Digest]] = []
    for chunk in chunks:
        head.append(chunk)
        if sum(map(len, head)) > limit:
            break
    return head


def _chunks(digests: Iterator[Digest]) -> Iterator[list[Digest]]:
    """FIRST_CHUNK digests, so sending starts at once, then twice as many each time up to
    CHUNK, so the senders are not left waiting on a long chunk while the first is sent."""
    size = FIRST_CHUNK
    while chunk := list(islice(digests, size)):
        yield chunk
        size = min(size * 2, CHUNK)


async def _rendered(
    settings: Settings, chunks: Iterator[list[Digest]], now: datetime, spread: bool
) -> AsyncGenerator[list[outbox.Outgoing], None]:
    """Each chunk rendered, in order: with `spread` (a big batch), in render processes a few
    chunks ahead; otherwise here."""
    if settings.render_processes == 0 or not spread:
        for chunk in chunks:
            yield await _render_here(settings, chunk, now)
        return
    loop = asyncio.get_running_loop()
    pool = processes.render_pool(settings)

    def start(chunk: Sequence[Digest]) -> asyncio.Future[list[outbox.Outgoing]]:
        job = functools.partial(render_chunk, settings, chunk, now, reload=False)
        return loop.run_in_executor(pool, job)

    # Taking a chunk decides its digests (planning, here in this process) just in time.
    pending = deque(start(chunk) for chunk in islice(chunks, AHEAD))
    try:
        while pending:
            outgoing = await pending.popleft()
            if (following := next(chunks, None)) is not None:
                pending.append(start(following))
            yield outgoing
    finally:
        for future in pending:
            future.cancel()
        pool.shutdown(wait=True, cancel_futures=True)


async def _render_here(
    settings: Settings, digests: Sequence[Digest], now: datetime
) -> list[outbox.Outgoing]:
    """Render in this process, yielding to the senders after each digest."""
    env = _environment(settings.templates_dir)
    outgoing = []
    for digest in digests:
        outgoing.append(render_outgoing(env, settings, digest, now=now))
        await asyncio.sleep(0)
    return outgoing


def enqueue_digests(
    engine: Engine,
    settings: Settings,
    digests: Sequence[Digest],
    *,
    now: datetime,
    token: int | None = None,
) -> list[int]:
    """Render the non-empty digests and commit them as pending rows in one transaction."""
    outgoing = render_chunk(settings, [d for d in digests if d.items or d.problem], now)
    return outbox.enqueue(engine, outgoing, now=now, token=token)
