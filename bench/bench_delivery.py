"""Benchmark: end-to-end digests per second (match, render, enqueue, deliver over SMTP on
loopback) against the transport ceiling (a bare aiosmtplib loop sending the same messages
over the same number of connections), measured in the same run. Not a test.

Each round runs send-now in a new process on a copy of the same database, then the
ceilings, in another, on the messages that run stored; the medians of the rounds close it.

    pip install -e '.[test]'     # aiosmtpd is the sink
    python bench/bench_delivery.py [--subscribers 10000] [--papers 500] [--connections 4]
                                   [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import email
import email.policy
import os
import resource
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiosmtplib
from sqlmodel import Session, select

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import make_papers, make_subscribers

from digestbot import service
from digestbot.delivery.pipeline import tune_gc
from digestbot.delivery.transport import Outbound, open_transport, send
from digestbot.ingest import papers as paper_store
from digestbot.models import ListedPaper, Listing
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.rules.subscriptions import SubscriptionsFile
from digestbot.settings import Settings
from digestbot.store.engine import make_engine
from digestbot.store.tables import MessageRow


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def start_sink(port: int) -> subprocess.Popen[bytes]:
    """aiosmtpd's Sink handler in its own process, so it does not share our GIL."""
    sink = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "aiosmtpd",
            "-n",
            "-l",
            f"127.0.0.1:{port}",
            "-c",
            "aiosmtpd.handlers.Sink",
        ],
    )
    for _ in range(100):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.1).close()
            return sink
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("the SMTP sink did not start")


def subscriptions(count: int) -> SubscriptionsFile:
    spec = []
    for sub in make_subscribers(count):
        rules = [
            {
                k: v
                for k, v in {
                    "name": r.name,
                    "any": list(r.any),
                    "all": list(r.all),
                    "none": list(r.none),
                    "authors": list(r.authors),
                    "fuzzy": r.fuzzy,
                }.items()
                if v
            }
            for r in sub.rules
        ]
        spec.append({"email": sub.email, "rules": rules})
    return SubscriptionsFile.model_validate({"subscribers": spec})


def ingest(engine, count: int, now: datetime) -> None:  # type: ignore[no-untyped-def]
    listed = tuple(
        ListedPaper(
            title=p.title,
            abstract=p.abstract,
            upvotes=p.upvotes,
            authors=p.authors,
            arxiv_id=f"2601.{i:05d}",
        )
        for i, p in enumerate(make_papers(count))
    )
    paper_store.ingest(engine, Listing("bench", listed), now=now)


async def ceiling(messages: list[bytes], port: int, connections: int) -> float:
    """Seconds for a bare aiosmtplib loop to send `messages` over `connections` connections."""
    parsed = [email.message_from_bytes(m, policy=email.policy.default) for m in messages]
    chunks = [parsed[i::connections] for i in range(connections)]

    async def one(chunk):  # type: ignore[no-untyped-def]
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for message in chunk:
            await client.send_message(message)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return time.perf_counter() - start


async def raw_ceiling(messages: list[bytes], port: int, connections: int) -> float:
    """Seconds to send the stored bytes as they are (sendmail, no re-serialising): a stricter
    ceiling than `ceiling`, whose send_message flattens each parsed message again."""
    chunks = [messages[i::connections] for i in range(connections)]

    async def one(chunk):  # type: ignore[no-untyped-def]
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, start_tls=False)
        await client.connect()
        for raw in chunk:
            await client.sendmail("bench@example.org", ["reader@example.org"], raw)
        await client.quit()

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return time.perf_counter() - start


async def own_ceiling(messages: list[bytes], port: int, connections: int) -> float:
    """Seconds for digestbot's own SMTP transport alone (`mailer.send`, whose DATA skips
    aiosmtplib's line-ending pass for CRLF messages) to send the stored bytes: the ceiling for
    the transport end to end really uses, stricter than both bare aiosmtplib loops."""
    settings = bench_settings("sqlite://", port, connections)  # no database is opened
    outbound = [Outbound.of(raw) for raw in messages]
    chunks = [outbound[i::connections] for i in range(connections)]

    async def one(chunk):  # type: ignore[no-untyped-def]
        async with open_transport(settings) as transport:
            for message in chunk:
                await send(message, transport)

    start = time.perf_counter()
    await asyncio.gather(*(one(c) for c in chunks))
    return time.perf_counter() - start


def bench_settings(database_url: str, port: int, connections: int) -> Settings:
    """Settings for plain SMTP to the sink on loopback over `connections` connections."""
    return Settings(
        database_url=database_url,
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_connections=connections,
        _env_file=None,  # type: ignore[call-arg]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3, help="end to end, then the ceilings")
    # One round's parts, each run by main() in a new process (see rounds()).
    parser.add_argument("--send-now", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--ceilings", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send_now:
        end_to_end(args.send_now, args.port, args.sink_pid, args.connections, args.now)
    elif args.ceilings:
        ceilings(args.ceilings, args.port, args.connections)
    else:
        summary(rounds(args))


def rounds(args: argparse.Namespace) -> list[tuple[float, float, float, float]]:
    """Make the database once; then each round runs send-now on a copy of it in a new
    process (as the `digestbot send-now` command runs: its own fork server, a heap nothing
    else used) and the three ceilings on the messages it stored, in another."""
    port = free_port()
    sink = start_sink(port)
    found = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            seed, database = Path(folder) / "seed.db", Path(folder) / "round.db"
            now = datetime.now(UTC)
            engine = make_engine(f"sqlite:///{seed}")
            ingest(engine, args.papers, now - timedelta(hours=1))
            sync_subscriptions(
                engine, subscriptions(args.subscribers), now=now - timedelta(hours=1)
            )
            engine.dispose()  # checkpoints the log: the one file holds the whole state
            print(
                f"{args.subscribers} subscribers, {args.papers} papers, "
                f"{args.connections} SMTP connections, {args.rounds} rounds"
            )
            for n in range(1, args.rounds + 1):
                shutil.copyfile(seed, database)
                common = ["--port", str(port), "--connections", str(args.connections)]
                when = ["--now", now.isoformat(), "--sink-pid", str(sink.pid)]
                e2e = part(["--send-now", str(database), *when, *common])
                sent, bare, raw, own = part(["--ceilings", str(database), *common])
                database.unlink()
                print(
                    f"  round {n}: transport ceiling (bare aiosmtplib send_message, the same "
                    f"{sent:.0f} messages, {args.connections} connections) {bare:.0f} msgs/s, "
                    f"end to end / it {e2e[0] / bare:.0%}; stricter ceiling (the stored bytes "
                    f"as they are, sendmail) {raw:.0f} msgs/s, end to end / it {e2e[0] / raw:.0%}; "
                    f"digestbot's own transport alone {own:.0f} msgs/s, end to end / it "
                    f"{e2e[0] / own:.0%}"
                )
                found.append((e2e[0], bare, raw, own))
    finally:
        sink.terminate()
        sink.wait()
    return found


def part(arguments: list[str]) -> list[float]:
    """Run this file with `arguments` in a new process; pass its report lines on and return
    the figures on its last line."""
    done = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, capture_output=True, text=True
    )
    *report, figures = done.stdout.splitlines()
    for line in report:
        print(line)
    return [float(v) for v in figures.split()]


def end_to_end(database: Path, port: int, sink_pid: int, connections: int, now: datetime) -> None:
    """send-now on `database` to the sink; print what it did, then its digests/s alone."""
    tune_gc()  # as the `digestbot` command does at start
    settings = bench_settings(f"sqlite:///{database}", port, connections)
    engine = make_engine(settings.database_url)
    cpu_before = cpu_seconds(sink_pid)
    peaks = RenderPeaks()
    peaks.start()
    marks: list[float] = []  # when each email was done with
    start = time.perf_counter()
    _, report = asyncio.run(
        service.send_now(
            engine, settings, now=now, progress=lambda _: marks.append(time.perf_counter())
        )
    )
    e2e = time.perf_counter() - start
    peaks.done.set()
    engine.dispose()
    sent = report.count("sent")
    print(
        f"end to end (match, render, enqueue, deliver): {sent} digests in {e2e:.2f} s "
        f"= {sent / e2e:.0f} digests/s; peak RSS {rss():.0f} MB (render processes "
        f"{peaks.mb:.0f} MB)"
    )
    if len(marks) > 1000:
        steady = (len(marks) - 1000) / (marks[-1] - marks[999])
        print(
            f"  first email after {marks[0] - start:.2f} s, the 1,000th after "
            f"{marks[999] - start:.2f} s; from there on {steady:.0f} digests/s"
        )
    used = [(b - a) / sent * 1000 for a, b in zip(cpu_before, cpu_seconds(sink_pid), strict=True)]
    print(
        f"  CPU per digest: this process {used[0]:.2f} ms (plan, enqueue, SMTP client, "
        f"outbox), render processes {used[1]:.2f} ms, SMTP sink {used[2]:.2f} ms"
    )
    print(sent / e2e)


def ceilings(database: Path, port: int, connections: int) -> None:
    """Print how many messages `database` stores and the msgs/s of the three ceilings on them."""
    engine = make_engine(f"sqlite:///{database}")
    with Session(engine) as session:
        messages = list(session.exec(select(MessageRow.raw)))
    engine.dispose()
    bare = len(messages) / asyncio.run(ceiling(messages, port, connections))
    raw = len(messages) / asyncio.run(raw_ceiling(messages, port, connections))
    own = len(messages) / asyncio.run(own_ceiling(messages, port, connections))
    print(len(messages), bare, raw, own)


def summary(found: list[tuple[float, float, float, float]]) -> None:
    """Medians over the rounds, and the median of the rounds' ratios (each ratio pairs an
    end-to-end run with the ceilings measured right after it)."""
    e2e, bare, raw, own = (statistics.median(r[k] for r in found) for k in range(4))
    by_bare, by_raw, by_own = (statistics.median(r[0] / r[k] for r in found) for k in (1, 2, 3))
    print(
        f"median of {len(found)} rounds: end to end {e2e:.0f} digests/s; send_message "
        f"ceiling {bare:.0f} msgs/s, ratio {by_bare:.0%}; stricter ceiling {raw:.0f} msgs/s, "
        f"ratio {by_raw:.0%}; digestbot's own transport {own:.0f} msgs/s, ratio {by_own:.0%}"
    )


def cpu_seconds(sink_pid: int) -> tuple[float, float, float]:
    """CPU seconds used so far by this process, the render processes once their pool has
    shut down (spawned: our finished children; forked by the fork server: its finished
    children, and the server itself) and the sink (from /proc, so Linux only)."""
    me = resource.getrusage(resource.RUSAGE_SELF)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    server = fork_server()
    return (
        me.ru_utime + me.ru_stime,
        children.ru_utime + children.ru_stime + (sum(proc_cpu(server)) if server else 0),
        proc_cpu(sink_pid)[0],
    )


def proc_cpu(pid: int) -> tuple[float, float]:
    """CPU seconds of a process itself and of its finished children, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan"), float("nan")
    utime, stime, cutime, cstime = (int(f) for f in fields[11:15])
    tick = os.sysconf("SC_CLK_TCK")
    return (utime + stime) / tick, (cutime + cstime) / tick


def children_of(pid: int) -> list[int]:
    """Processes whose parent is `pid`, from /proc."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            parent = int(stat.read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, IndexError, ValueError):
            continue
        if parent == pid:
            found.append(int(stat.parent.name))
    return found


def fork_server() -> int | None:
    """The multiprocessing fork server this process started (which forks the render
    processes), if any."""
    for pid in children_of(os.getpid()):
        try:
            if b"forkserver" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
        except OSError:
            continue
    return None


class RenderPeaks(threading.Thread):
    """The render processes' peak RSS, sampled while they live: forked by the fork server,
    they are not this process's children, so getrusage never sees them."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.done = threading.Event()
        self.mb = 0.0

    def run(self) -> None:
        server = None
        while not self.done.wait(0.5):
            server = server or fork_server()  # found once: it lives as long as this process
            for pid in children_of(server) if server else []:
                try:
                    status = Path(f"/proc/{pid}/status").read_text()
                except OSError:
                    continue
                for line in status.splitlines():
                    if line.startswith("VmHWM:"):
                        self.mb = max(self.mb, int(line.split()[1]) / 1024)


def rss() -> float:
    """Peak resident memory of this process in MB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    main()
