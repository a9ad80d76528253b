"""Ingest stage, network edge: polite HTTP GETs with retries and conditional requests."""

from __future__ import annotations

import asyncio
import random
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import httpx

from digestbot import __version__
from digestbot.errors import SourceError

USER_AGENT = f"digestbot/{__version__} (+https://github.com/digestbot/digestbot)"
_RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_DOCUMENT_BYTES = 50 * 2**20

Sleep = Callable[[float], Awaitable[None]]
# Told of each retry before its wait: the url, the wait in seconds, the retry's number and
# how many retries there can be (a CLI prints it; the daemon passes none).
OnRetry = Callable[[str, float, int, int], None]
# getaddrinfo's "no such host" answers: waiting does not make a name exist (EAI_AGAIN, a
# resolver that did not answer, is left to the retries).
_NO_SUCH_HOST = frozenset(
    code for code in (socket.EAI_NONAME, getattr(socket, "EAI_NODATA", None)) if code is not None
)


@dataclass(frozen=True)
class HttpPolicy:
    """How patient to be with a server: `timeout` bounds each attempt from connecting to the
    last byte; a document decompressing to more than `max_bytes` is refused."""

    timeout: float = 20.0
    retries: int = 3
    backoff: float = 1.0
    max_wait: float = 120.0
    max_bytes: int = MAX_DOCUMENT_BYTES


@dataclass(frozen=True)
class Validators:
    """What the server said identifies its last answer, for a conditional request."""

    etag: str | None = None
    last_modified: str | None = None


@dataclass(frozen=True)
class Fetched:
    """A finished GET: the body, or `not_modified` when the server answered 304."""

    url: str
    body: bytes
    validators: Validators
    not_modified: bool = False


def make_client(policy: HttpPolicy) -> httpx.AsyncClient:
    """An httpx client naming digestbot in its User-Agent, with the policy's timeout."""
    return httpx.AsyncClient(
        timeout=httpx.Timeout(policy.timeout),
        headers={"User-Agent": USER_AGENT},
        follow_redirects=True,
    )


async def fetch(
    client: httpx.AsyncClient,
    url: str,
    *,
    policy: HttpPolicy,
    validators: Validators | None = None,
    params: dict[str, str] | None = None,
    sleep: Sleep = asyncio.sleep,
    on_retry: OnRetry | None = None,
) -> Fetched:
    """GET `url`, retrying 429, 5xx and network failures with backoff; raise SourceError.

    Failures waiting cannot heal (no such host, a scheme other than HTTP) raise at once.
    """
    headers = _conditional_headers(validators)
    for attempt in range(policy.retries + 1):
        last = attempt == policy.retries
        try:
            # A deadline on the whole attempt: httpx's timeout bounds each read, so a server
            # trickling a byte at a time would otherwise keep the fetch going for ever.
            async with asyncio.timeout(policy.timeout):
                response, body = await _get(client, url, headers, params, policy.max_bytes)
        except (httpx.HTTPError, TimeoutError) as exc:
            if permanent := _permanent(exc, url):
                raise SourceError(f"{url}: {permanent}", _fix(permanent)) from None
            if last:
                raise SourceError(
                    f"{url}: {_reason(exc)} after {attempt + 1} attempts",
                    "check the URL and your network, or try again later",
                ) from None
            await _wait(url, _backoff(policy, attempt), attempt, policy, sleep, on_retry)
            continue
        if response.status_code == 304:
            return Fetched(str(response.url), b"", validators or Validators(), not_modified=True)
        if response.is_success:
            return Fetched(str(response.url), body, _validators_of(response))
        if response.status_code not in _RETRY_STATUSES or last:
            raise SourceError(
                f"{url}: HTTP {response.status_code} {response.reason_phrase}",
                "check the URL" if response.status_code < 500 else "try again later",
            )
        wait = _retry_after(response, policy) or _backoff(policy, attempt)
        await _wait(url, wait, attempt, policy, sleep, on_retry)
    raise AssertionError("unreachable: the loop returns or raises")


async def _wait(
    url: str,
    seconds: float,
    attempt: int,
    policy: HttpPolicy,
    sleep: Sleep,
    on_retry: OnRetry | None,
) -> None:
    if on_retry is not None:
        on_retry(url, seconds, attempt + 1, policy.retries)
    await sleep(seconds)


def _fix(permanent: str) -> str:
    # A name that does not resolve is as often a machine without DNS or internet as a typo.
    if permanent.startswith("no such host"):
        return "check the URL, and that this machine can reach the internet (DNS)"
    return "check the URL"


def _permanent(exc: httpx.HTTPError | TimeoutError, url: str) -> str | None:
    """Why `exc` cannot heal by waiting, or None when a retry may help."""
    if isinstance(exc, httpx.UnsupportedProtocol):
        return "digestbot fetches only http:// and https:// URLs"
    cause: BaseException | None = exc
    while cause is not None:
        if isinstance(cause, socket.gaierror) and cause.errno in _NO_SUCH_HOST:
            return f"no such host: {httpx.URL(url).host}"
        cause = cause.__cause__ or cause.__context__
    return None


async def _get(
    client: httpx.AsyncClient,
    url: str,
    headers: dict[str, str],
    params: dict[str, str] | None,
    max_bytes: int,
) -> tuple[httpx.Response, bytes]:
    """One GET; a successful answer's body is read decompressed, stopping past `max_bytes`."""
    async with client.stream("GET", url, headers=headers, params=params) as response:
        if not response.is_success or response.status_code == 304:
            return response, b""
        body = bytearray()
        async for chunk in response.aiter_bytes():
            body += chunk
            if len(body) > max_bytes:
                raise SourceError(
                    f"{url}: the document is larger than {max_bytes / 2**20:g} MB"
                    " (decompressed); stopped reading",
                    "raise DIGESTBOT_MAX_DOCUMENT_MB if this source is genuine",
                )
        return response, bytes(body)


def _conditional_headers(validators: Validators | None) -> dict[str, str]:
    headers = {}
    if validators and validators.etag:
        headers["If-None-Match"] = validators.etag
    if validators and validators.last_modified:
        headers["If-Modified-Since"] = validators.last_modified
    return headers


def _validators_of(response: httpx.Response) -> Validators:
    return Validators(response.headers.get("ETag"), response.headers.get("Last-Modified"))


def _backoff(policy: HttpPolicy, attempt: int) -> float:
    """Exponential backoff with jitter, so many bots do not retry in step."""
    base: float = policy.backoff * 2**attempt
    return min(policy.max_wait, base * random.uniform(0.5, 1.0))


def _retry_after(response: httpx.Response, policy: HttpPolicy) -> float | None:
    """Seconds the server asked us to wait (delta-seconds or an HTTP date), capped."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    if value.isdigit():
        return min(policy.max_wait, float(value))
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return min(policy.max_wait, max(0.0, (when - datetime.now(UTC)).total_seconds()))


def _reason(exc: httpx.HTTPError | TimeoutError) -> str:
    if isinstance(exc, (httpx.TimeoutException, TimeoutError)):
        return "timed out"
    text = " ".join(str(exc).split())
    return text or exc.__class__.__name__
