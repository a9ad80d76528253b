"""Benchmark: digests per second end to end (`send-now`: match, render, enqueue, deliver over
SMTP on loopback) against the yardstick, a bare aiosmtplib `sendmail` loop sending the same
stored message bytes over the same number of connections, measured in the same run; and,
for each speed trick the code keeps, end to end with that trick taken out. Not a test.

Each round runs send-now in a new process on a copy of the same database, once as shipped
and once per variant (bench/variants.py: a patched copy of the package), in turn; then the
yardstick on the messages the first run stored. The medians of the rounds close it.

    pip install -e '.[test]'     # aiosmtpd is the sink
    python bench/bench_delivery.py [--subscribers 10000] [--papers 500] [--connections 4]
                                   [--rounds 3] [--variants all|none|NAME,NAME]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
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
from variants import VARIANTS, patched_copy

from digestbot import service
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


async def sendmail_loop(messages: list[bytes], port: int, connections: int) -> float:
    """Seconds for a bare aiosmtplib loop to send the stored bytes as they are (`sendmail`)
    over `connections` connections: the yardstick."""
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


def bench_settings(database_url: str, port: int, connections: int, **extra: object) -> Settings:
    """Settings for plain SMTP to the sink on loopback over `connections` connections."""
    return Settings(
        database_url=database_url,
        transport="smtp",
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_connections=connections,
        _env_file=None,  # type: ignore[call-arg]
        **extra,  # type: ignore[arg-type]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--connections", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--variants", default="all", help="all, none, or names joined by ,")
    # One round's parts, each run by main() in a new process (see rounds()).
    parser.add_argument("--send-now", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--yardstick", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--sink-pid", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--render-processes", type=int, default=2, help=argparse.SUPPRESS)
    parser.add_argument("--now", type=datetime.fromisoformat, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.send_now:
        end_to_end(args)
    elif args.yardstick:
        yardstick(args.yardstick, args.port, args.connections)
    else:
        summary(rounds(args))


def chosen(spec: str) -> list[str]:
    if spec == "none":
        return []
    names = list(VARIANTS) if spec == "all" else spec.split(",")
    unknown = sorted(set(names) - set(VARIANTS))
    if unknown:
        raise SystemExit(f"unknown variants {unknown}; known: {sorted(VARIANTS)}")
    return names


Round = dict[str, float]  # "shipped", "yardstick" and each variant: digests (msgs) per second


def rounds(args: argparse.Namespace) -> list[Round]:
    """Make the database once; then each round runs send-now on a copy of it in a new
    process (as the `digestbot send-now` command runs: its own fork server, a fresh heap),
    as shipped and then once per variant, and the yardstick on what the first run stored."""
    names = chosen(args.variants)
    port = free_port()
    sink = start_sink(port)
    found = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            work = Path(folder)
            seed, database = work / "seed.db", work / "round.db"
            now = datetime.now(UTC)
            engine = make_engine(f"sqlite:///{seed}")
            ingest(engine, args.papers, now - timedelta(hours=1))
            sync_subscriptions(
                engine, subscriptions(args.subscribers), now=now - timedelta(hours=1)
            )
            engine.dispose()  # checkpoints the log: the one file holds the whole state
            copies = {
                name: patched_copy(name, work / f"variant{n}") for n, name in enumerate(names)
            }
            print(
                f"{args.subscribers} subscribers, {args.papers} papers, "
                f"{args.connections} SMTP connections, {args.rounds} rounds"
            )
            common = ["--port", str(port), "--connections", str(args.connections)]
            when = ["--now", now.isoformat(), "--sink-pid", str(sink.pid)]
            for n in range(1, args.rounds + 1):
                found.append({})
                # A new order each round: the host's speed drifts within a round too.
                order = ["shipped", *names]
                random.Random(n).shuffle(order)
                for name in order:
                    shutil.copyfile(seed, database)
                    extra = ["--render-processes", "0"] if name == "render processes" else []
                    env = (
                        {**os.environ, "PYTHONPATH": str(copies[name])} if name in copies else None
                    )
                    print(f"  round {n}, {name}:")
                    (found[-1][name],) = part(
                        ["--send-now", str(database), *when, *common, *extra], env
                    )
                    if name == "shipped":
                        (found[-1]["yardstick"],) = part(["--yardstick", str(database), *common])
                        print(f"    yardstick (bare aiosmtplib sendmail loop, same bytes): "
                              f"{found[-1]['yardstick']:.0f} msgs/s")  # fmt: skip
                    database.unlink()
    finally:
        sink.terminate()
        sink.wait()
    return found


def part(arguments: list[str], env: dict[str, str] | None = None) -> list[float]:
    """Run this file with `arguments` in a new process; pass its report lines on and return
    the figures on its last line."""
    done = subprocess.run(
        [sys.executable, __file__, *arguments], check=True, capture_output=True, text=True, env=env
    )
    *report, figures = done.stdout.splitlines()
    for line in report:
        print("    " + line)
    return [float(v) for v in figures.split()]


def end_to_end(args: argparse.Namespace) -> None:
    """send-now on the database to the sink; print what it did, then its digests/s alone."""
    import digestbot

    settings = bench_settings(
        f"sqlite:///{args.send_now}", args.port, args.connections,
        render_processes=args.render_processes,
    )  # fmt: skip
    engine = make_engine(settings.database_url)
    cpu_before = cpu_seconds(args.sink_pid)
    peaks = RenderPeaks()
    peaks.start()
    start = time.perf_counter()
    _, report = asyncio.run(service.send_now(engine, settings, now=args.now))
    e2e = time.perf_counter() - start
    peaks.done.set()
    engine.dispose()
    sent = report.count("sent")
    used = [
        (b - a) / sent * 1000 for a, b in zip(cpu_before, cpu_seconds(args.sink_pid), strict=True)
    ]
    print(
        f"{sent} digests in {e2e:.2f} s = {sent / e2e:.0f} digests/s; peak RSS {rss():.0f} MB "
        f"(render processes {peaks.mb:.0f} MB); CPU a digest: this process {used[0]:.2f} ms, "
        f"render processes {used[1]:.2f} ms, sink {used[2]:.2f} ms "
        f"[{Path(digestbot.__file__).parent.parent.name}]"
    )
    print(sent / e2e)


def yardstick(database: Path, port: int, connections: int) -> None:
    """Print the yardstick's msgs/s on the messages `database` stores."""
    engine = make_engine(f"sqlite:///{database}")
    with Session(engine) as session:
        messages = list(session.exec(select(MessageRow.raw)))
    engine.dispose()
    print(len(messages) / asyncio.run(sendmail_loop(messages, port, connections)))


def summary(found: list[Round]) -> None:
    """Medians over the rounds: end to end against the yardstick, and what each trick gives
    (each ratio pairs runs of the same round)."""
    median = statistics.median
    shipped = median(r["shipped"] for r in found)
    ratio = median(r["shipped"] / r["yardstick"] for r in found)
    print(
        f"median of {len(found)} rounds: end to end {shipped:.0f} digests/s, yardstick "
        f"{median(r['yardstick'] for r in found):.0f} msgs/s, end to end / yardstick {ratio:.0%}"
    )
    for name in [k for k in found[0] if k not in ("shipped", "yardstick")]:
        gain = median(r["shipped"] / r[name] - 1 for r in found)
        rounds_ = ", ".join(f"{r['shipped'] / r[name] - 1:+.0%}" for r in found)
        without = median(r[name] for r in found)
        print(
            f"  without {name}: {without:.0f} digests/s; the trick gives {gain:+.0%} "
            f"(rounds {rounds_}){'' if gain >= 0.10 else '  < 10%'}"
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
