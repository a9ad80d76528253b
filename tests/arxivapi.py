"""Test helper: a loopback stand-in for the arXiv API (`GET /api/query`) serving a corpus.

Its search is written apart from digestbot's own code (its own word normalisation, its own
query parser) so the tests do not share our assumptions. See tests/fixtures/arxiv_api/README.md.
"""

from __future__ import annotations

import itertools
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from arxivatom import render_atom
from arxivquery import Parser, QueryError, id_key, matches, terms, title_terms

CORPUS = Path(__file__).parent / "fixtures" / "arxiv_api" / "corpus.json"
Entry = dict[str, Any]


def load_corpus(path: Path = CORPUS) -> list[Entry]:
    return list(json.loads(path.read_text(encoding="utf-8")))


@dataclass(frozen=True)
class Request:
    """One request as the server saw it; times are the server's own time.monotonic()."""

    params: dict[str, str]
    headers: dict[str, str]
    arrived: float
    in_flight: int
    status: int = 0
    finished: float = 0.0


@dataclass
class _Faults:
    one_shot: list[tuple[str, int, str | None]] = field(default_factory=list)
    next_delays: list[float] = field(default_factory=list)
    word_delays: dict[str, float] = field(default_factory=dict)


class ArxivApi:
    """A real HTTP server on 127.0.0.1 answering `/api/query` from `corpus` in Atom.

    `shape` is "current" (arXiv's output since November 2025) or "legacy"; entries marked
    `withhold` are hidden unless `withhold=False`. Use as a context manager, or start()/stop().
    """

    def __init__(
        self, corpus: list[Entry] | None = None, *, shape: str = "current", withhold: bool = True
    ) -> None:
        if shape not in ("current", "legacy"):
            raise ValueError(f"unknown shape {shape!r}")
        entries = load_corpus() if corpus is None else corpus
        self.entries = [e for e in entries if not (withhold and e.get("withhold"))]
        self.by_id = {e["id"]: e for e in self.entries}
        self.shape = shape
        self.requests: list[Request] = []
        self.base_url = ""
        self._faults = _Faults()
        self._lock = threading.Lock()
        self._in_flight = 0
        self._httpd: ThreadingHTTPServer | None = None

    # ---- behaviours a test switches on; one-shot ones are served in the order asked
    def fail(self, n: int = 1, status: int = 503, retry_after: str | None = "2") -> None:
        """The next `n` requests get `status`, with Retry-After when `retry_after` is set."""
        with self._lock:
            self._faults.one_shot += [("status", status, retry_after)] * n

    def slow(self, seconds: float, word: str | None = None) -> None:
        """Delay the next request by `seconds`, or every request whose query mentions `word`."""
        with self._lock:
            if word is None:
                self._faults.next_delays.append(seconds)
            else:
                self._faults.word_delays[word.lower()] = seconds

    def malformed(self) -> None:
        """The next answer is an Atom document cut off in the middle."""
        with self._lock:
            self._faults.one_shot.append(("malformed", 200, None))

    def blank(self) -> None:
        """The next answer is a 200 with an empty body."""
        with self._lock:
            self._faults.one_shot.append(("blank", 200, None))

    # ---- what happened
    @property
    def max_in_flight(self) -> int:
        return max((r.in_flight for r in self.requests), default=0)

    def intervals(self) -> list[float]:
        """Seconds from each request's arrival to the next one's."""
        arrivals = [r.arrived for r in self.requests]
        return [b - a for a, b in itertools.pairwise(arrivals)]

    def idle_gaps(self) -> list[float]:
        """Seconds from the end of each answer to the arrival of the next request."""
        pairs = itertools.pairwise(self.requests)
        return [nxt.arrived - prev.finished for prev, nxt in pairs]

    # ---- the search itself
    def search(self, params: dict[str, str]) -> tuple[list[Entry], int]:
        """The page of entries answering `params`, and how many matched in all."""
        found = self._select(params.get("search_query", ""), params.get("id_list", ""))
        start = max(int(params.get("start") or 0), 0)
        size = max(int(params.get("max_results") or 10), 0)
        return found[start : start + size], len(found)

    def _select(self, query: str, id_list: str) -> list[Entry]:
        wanted = [i.strip().split("v")[0] for i in id_list.split(",") if i.strip()]
        pool = [self.by_id[i] for i in wanted if i in self.by_id] if wanted else self.entries
        if not query.strip():
            return pool if wanted else []
        node = Parser(query).parse()
        hits = [e for e in pool if matches(node, e)]
        exact = [t for t in title_terms(node) if t]
        hits.sort(key=lambda e: id_key(e["id"]), reverse=True)
        hits.sort(key=lambda e: terms(e["title"]) not in exact)
        return hits

    def answer(self, params: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        try:
            page, total = self.search(params)
        except (QueryError, ValueError) as exc:
            return 400, {"Content-Type": "text/plain"}, str(exc).encode()
        body = render_atom(page, params, total=total, shape=self.shape)
        return 200, {"Content-Type": "application/atom+xml; charset=utf-8"}, body

    # ---- the server
    def _arrive(self, params: dict[str, str], headers: dict[str, str]) -> tuple[int, Any, float]:
        with self._lock:
            self._in_flight += 1
            self.requests.append(Request(params, headers, time.monotonic(), self._in_flight))
            index = len(self.requests) - 1
            fault = self._faults.one_shot.pop(0) if self._faults.one_shot else None
            delay = self._faults.next_delays.pop(0) if self._faults.next_delays else 0.0
            mentioned = terms(params.get("search_query", ""))
            for word, seconds in self._faults.word_delays.items():
                if word in mentioned:
                    delay = max(delay, seconds)
        return index, fault, delay

    def _leave(self, index: int, status: int) -> None:
        with self._lock:
            self._in_flight -= 1
            done = self.requests[index]
            self.requests[index] = Request(
                done.params, done.headers, done.arrived, done.in_flight, status, time.monotonic()
            )

    def respond(self, target: str, headers: dict[str, str]) -> tuple[int, dict[str, str], bytes]:
        """Everything one GET does but writing: record, apply faults, search, render."""
        parts = urlsplit(target)
        params = {k: v[-1] for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        index, fault, delay = self._arrive(params, headers)
        status, out_headers, body = 404, {"Content-Type": "text/plain"}, b"not found"
        try:
            time.sleep(delay)
            if parts.path != "/api/query":
                return status, out_headers, body
            if fault and fault[0] == "status":
                retry = {"Retry-After": fault[2]} if fault[2] is not None else {}
                status, out_headers, body = fault[1], {"Content-Type": "text/plain", **retry}, b""
                body = b"Service Unavailable" if fault[1] == 503 else b"error"
                return status, out_headers, body
            status, out_headers, body = self.answer(params)
            if fault and fault[0] == "blank":
                body = b""
            elif fault and fault[0] == "malformed":
                body = body[: max(len(body) * 2 // 3, 60)]
            return status, out_headers, body
        finally:
            self._leave(index, status)

    def start(self) -> ArxivApi:
        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(self))
        self._httpd.daemon_threads = True
        self.base_url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True).start()
        return self

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None

    def __enter__(self) -> ArxivApi:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _handler(api: ArxivApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            headers = {k.lower(): v for k, v in self.headers.items()}
            status, out_headers, body = api.respond(self.path, headers)
            try:
                self.send_response(status)
                for name, value in out_headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up waiting (a timeout test)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
