"""Tests for fetching over real loopback HTTP: retries, Retry-After, timeouts, 304s."""

from __future__ import annotations

import gzip
import time

import pytest
from conftest import HttpServer, Reply, Sleeps, Trickle

from digestbot.errors import SourceError
from digestbot.ingest.http import USER_AGENT, HttpPolicy, Validators, fetch, make_client

FAST = HttpPolicy(timeout=2.0, retries=2, backoff=0.01, max_wait=30.0)


async def get(url: str, policy: HttpPolicy = FAST, **kwargs):  # type: ignore[no-untyped-def]
    sleeps = kwargs.pop("sleep", Sleeps())
    async with make_client(policy) as client:
        return await fetch(client, url, policy=policy, sleep=sleeps, **kwargs)


async def test_it_names_digestbot_in_the_user_agent(http_server: HttpServer) -> None:
    """Every request carries digestbot's name and version."""
    url = http_server.route("/feed", Reply(body=b"ok"))
    fetched = await get(url)
    assert fetched.body == b"ok"
    assert http_server.requests[0][1]["user-agent"] == USER_AGENT


async def test_it_retries_after_429_honouring_retry_after(http_server: HttpServer) -> None:
    """A 429 with Retry-After: 7 waits 7 seconds, then the retry succeeds."""
    url = http_server.route("/feed", Reply(429, headers={"Retry-After": "7"}), Reply(body=b"fine"))
    sleeps = Sleeps()
    fetched = await get(url, sleep=sleeps)
    assert fetched.body == b"fine"
    assert sleeps.waits == [7.0]


async def test_it_retries_a_500_then_succeeds(http_server: HttpServer) -> None:
    """A server error is retried with a short backoff."""
    url = http_server.route("/feed", Reply(500), Reply(body=b"fine"))
    sleeps = Sleeps()
    assert (await get(url, sleep=sleeps)).body == b"fine"
    assert http_server.hits("/feed") == 2
    assert len(sleeps.waits) == 1 and sleeps.waits[0] <= FAST.backoff


async def test_it_gives_up_after_the_last_retry_with_the_status(http_server: HttpServer) -> None:
    """Persistent 503s end in one SourceError naming the URL and status."""
    url = http_server.route("/feed", Reply(503))
    with pytest.raises(SourceError, match=r"/feed: HTTP 503 Service Unavailable"):
        await get(url)
    assert http_server.hits("/feed") == FAST.retries + 1


async def test_a_404_is_not_retried(http_server: HttpServer) -> None:
    """Client errors other than 429 fail at once."""
    url = http_server.route("/feed", Reply(404, b"gone"))
    with pytest.raises(SourceError, match="HTTP 404"):
        await get(url)
    assert http_server.hits("/feed") == 1


async def test_a_slow_server_times_out(http_server: HttpServer) -> None:
    """An answer slower than the timeout is retried, then reported as timed out."""
    url = http_server.route("/slow", Reply(body=b"late", delay=0.5))
    policy = HttpPolicy(timeout=0.1, retries=1, backoff=0.0)
    with pytest.raises(SourceError, match=r"/slow: timed out after 2 attempts"):
        await get(url, policy)


async def test_a_truncated_body_is_an_error(http_server: HttpServer) -> None:
    """A body shorter than its Content-Length is a failure, not a short document."""
    url = http_server.route("/cut", Reply(body=b'[{"paper":', truncate=True))
    with pytest.raises(SourceError, match="/cut"):
        await get(url)


async def test_an_unchanged_feed_answers_304(http_server: HttpServer) -> None:
    """With the stored ETag the server answers 304 and nothing is downloaded."""
    url = http_server.route("/feed", Reply(body=b"<rss/>", headers={"ETag": '"v1"'}))
    first = await get(url)
    assert first.validators == Validators('"v1"', None)
    second = await get(url, validators=first.validators)
    assert second.not_modified
    assert http_server.requests[1][1]["if-none-match"] == '"v1"'


async def test_a_refused_connection_is_reported_with_the_url() -> None:
    """No server at all: one SourceError with the URL and the reason."""
    from conftest import free_port

    url = f"http://127.0.0.1:{free_port()}/feed"
    with pytest.raises(SourceError, match=f"{url}: .*after 3 attempts"):
        await get(url)


async def test_a_trickling_server_is_cut_off_at_the_deadline(trickle_server: Trickle) -> None:
    """A byte every 0.2 s never trips a per-read timeout; the 1 s deadline on the whole
    answer ends the fetch anyway."""
    policy = HttpPolicy(timeout=1.0, retries=0, backoff=0.0)
    started = time.monotonic()
    with pytest.raises(SourceError, match=r"/feed: timed out after 1 attempts"):
        await get(trickle_server.url, policy)
    assert time.monotonic() - started < 3.0


async def test_a_gzip_bomb_is_refused_at_the_size_limit(http_server: HttpServer) -> None:
    """20 MB of zeros sent as 20 kB of gzip stops being read past the 1 MB limit."""
    bomb = gzip.compress(bytes(20 * 2**20))
    assert len(bomb) < 100_000
    url = http_server.route("/bomb", Reply(body=bomb, headers={"Content-Encoding": "gzip"}))
    policy = HttpPolicy(timeout=5.0, retries=2, backoff=0.0, max_bytes=2**20)
    with pytest.raises(SourceError, match=r"/bomb: the document is larger than 1 MB"):
        await get(url, policy)
    assert http_server.hits("/bomb") == 1  # an oversized document is not fetched again


async def test_a_document_within_the_size_limit_is_read_whole(http_server: HttpServer) -> None:
    """A gzip answer just under the limit arrives decompressed and complete."""
    text = b"x" * (2**20 - 1)
    url = http_server.route(
        "/ok", Reply(body=gzip.compress(text), headers={"Content-Encoding": "gzip"})
    )
    fetched = await get(url, HttpPolicy(timeout=5.0, retries=0, max_bytes=2**20))
    assert fetched.body == text


async def test_no_such_host_fails_at_once_without_retrying() -> None:
    """A name that resolves nowhere raises SourceError before any wait or retry, saying it
    may be the machine's internet rather than the URL."""
    sleeps = Sleeps()
    with pytest.raises(SourceError, match=r"no such host: nonexistent\.invalid") as raised:
        await get("http://nonexistent.invalid/feed", sleep=sleeps)
    assert sleeps.waits == []
    assert "can reach the internet" in str(raised.value)


async def test_each_retry_is_told_before_its_wait(http_server: HttpServer) -> None:
    """`on_retry` hears the url, the wait, the retry's number and how many there can be."""
    url = http_server.route("/feed", Reply(503), Reply(503), Reply(body=b"ok"))
    told: list[tuple[str, float, int, int]] = []
    sleeps = Sleeps()
    fetched = await get(url, sleep=sleeps, on_retry=lambda *args: told.append(args))
    assert fetched.body == b"ok"
    assert [(u, n, of) for u, _, n, of in told] == [(url, 1, 2), (url, 2, 2)]
    assert [wait for _, wait, _, _ in told] == sleeps.waits
