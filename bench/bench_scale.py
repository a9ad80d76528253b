"""Benchmark: a digest round shared by 1, 2 and 4 `digestbot worker` processes on PostgreSQL
(digests per second, CPU per digest in each process, time per slice), a projection of the
workers 1,000,000 digests in 15 minutes need, and whether planning a slice stays flat as
readers grow. Not a test.

It starts its own throwaway PostgreSQL cluster (Debian's initdb and pg_ctl) and an aiosmtpd
sink, each in its own processes on loopback; the readers and papers are stored once.

    pip install -e '.[test]'     # psycopg and aiosmtpd
    python bench/bench_scale.py [--readers 100000] [--papers 1000] [--workers 1,2,4]
                                [--slice-size 500] [--scale-readers 300000] [--skip-scale]
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import text

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import (
    bench_settings,
    children_of,
    free_port,
    ingest,
    proc_cpu,
    start_sink,
    subscriptions,
)

from digestbot.rules.subscribers import sync_subscriptions
from digestbot.schedule import tasks
from digestbot.store.engine import make_engine

RUN_STATE = "sent_papers, delivery_messages, deliveries, digest_periods, work_tasks, workers"
SCALE_SLICES = 20  # slices one worker works at each reader count before it is stopped
TARGET, WITHIN, HOST_CORES = 1_000_000, 15 * 60, 2  # the projection's digests, seconds, cores


@dataclass
class Run:
    """One round worked by `workers` processes: what it sent, in how long, at what CPU."""

    workers: int
    digests: int
    wall: float
    cpu: dict[str, float]  # seconds used in the run: "workers", "postgres", "sink"
    seconds: list[float]  # each slice's time in its transaction
    waited: list[float]  # of which waiting on its subscribers' row locks

    def per_digest(self, part: str) -> float:
        return self.cpu[part] / max(self.digests, 1)


@contextmanager
def cluster() -> Iterator[tuple[str, int]]:
    """A throwaway PostgreSQL cluster on a loopback port, as the test suite starts one (as
    `postgres` when run as root); yields its database URL and postmaster's pid."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"))
    initdb = str(found[-1]) if found else shutil.which("initdb")
    if initdb is None:
        raise SystemExit("PostgreSQL (initdb, pg_ctl) is not installed")
    bindir = Path(initdb).parent
    owner = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    folder = Path(tempfile.mkdtemp(prefix="digestbot-bench-pg-"))
    if owner:
        shutil.chown(folder, "postgres")
    data, port = folder / "data", free_port()
    subprocess.run(
        [*owner, initdb, "-D", str(data), "-U", "digestbot", "--auth=trust", "-E", "UTF8",
         "--no-sync"], check=True, capture_output=True,
    )  # fmt: skip
    options = f"-h 127.0.0.1 -p {port} -k {folder} -F"  # no fsync: a throwaway cluster
    pg_ctl = str(bindir / "pg_ctl")
    subprocess.run(
        [*owner, pg_ctl, "-D", str(data), "-l", str(folder / "log"), "-w", "-o", options,
         "start"], check=True, capture_output=True,
    )  # fmt: skip
    try:
        postmaster = int((data / "postmaster.pid").read_text().split()[0])
        yield f"postgresql://digestbot@127.0.0.1:{port}/postgres", postmaster
    finally:
        stop = [*owner, pg_ctl, "-D", str(data), "-m", "immediate", "stop"]
        subprocess.run(stop, check=False, capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


_COPY_READERS = text(
    "INSERT INTO subscribers (id, email, name, active, max_papers, timezone, send_at, frequency,"
    " send_empty, created_at, updated_at, recommend) SELECT s.id + k * :high, 'c' || k || '.' ||"
    " s.email, name, active, max_papers, timezone, send_at, frequency, send_empty, created_at,"
    " updated_at, recommend FROM subscribers s, generate_series(1, :extra / :high + 1) k"
    " ORDER BY k, s.id LIMIT :extra"
)
_COPY_RULES = text(
    "INSERT INTO rules (subscriber_id, position, name, body) SELECT c.id, r.position, r.name,"
    " r.body FROM subscribers c JOIN rules r ON r.subscriber_id = (c.id - 1) % :high + 1"
    " WHERE c.id > :high ORDER BY c.id, r.position"
)


def server_cpu(postmaster: int) -> float:
    """CPU seconds of PostgreSQL so far: the postmaster, the backends it reaped and those
    alive (with whatever they reaped)."""
    return sum(sum(proc_cpu(pid)) for pid in [postmaster, *children_of(postmaster)])


class Bench:
    """The database, the sink and the settings every round and worker uses."""

    def __init__(self, url: str, postmaster: int, port: int, sink: int, args: argparse.Namespace):
        self.url, self.postmaster, self.port, self.sink = url, postmaster, port, sink
        self.settings = bench_settings(url, port, 4, slice_size=args.slice_size)
        self.engine = make_engine(url)
        # A day gone by, so every row the round queues is due by the clock the workers read.
        self.at = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
        self.at -= timedelta(days=1)
        self.logs = Path(tempfile.mkdtemp(prefix="digestbot-bench-logs-"))

    def store(self, readers: int, papers: int = 0) -> float:
        """Sync `readers` readers (the first ones as before) and ingest `papers`; seconds."""
        started = time.perf_counter()
        if papers:
            ingest(self.engine, papers, self.at - timedelta(hours=2))
        sync_subscriptions(self.engine, subscriptions(readers), now=self.at - timedelta(hours=3))
        self.vacuum()
        return time.perf_counter() - started

    def vacuum(self) -> None:
        """Fresh statistics for the planner, as autovacuum would give a settled database."""
        with self.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as db:
            db.execute(text("VACUUM ANALYZE"))

    def grow(self, readers: int) -> float:
        """Copies of the stored readers (their rules too, new addresses) up to `readers`, in
        SQL: a slice's work is the same, the tables are larger; seconds."""
        started = time.perf_counter()
        with self.engine.begin() as db:
            high = int(db.execute(text("SELECT max(id) FROM subscribers")).scalar_one())
            db.execute(_COPY_READERS, {"high": high, "extra": max(0, readers - high)})
            db.execute(_COPY_RULES, {"high": high})
            db.execute(
                text("SELECT setval('subscribers_id_seq', (SELECT max(id) FROM subscribers))")
            )
        self.vacuum()
        return time.perf_counter() - started

    def reset(self) -> None:
        """Back to the stored readers and papers, nothing decided or sent."""
        with self.engine.begin() as db:
            db.execute(text(f"TRUNCATE {RUN_STATE}"))

    def environment(self) -> dict[str, str]:
        return {
            **os.environ,
            "DIGESTBOT_DATABASE_URL": self.url,
            "DIGESTBOT_TRANSPORT": "smtp",
            "DIGESTBOT_SMTP_HOST": "127.0.0.1",
            "DIGESTBOT_SMTP_PORT": str(self.port),
            "DIGESTBOT_SMTP_TLS": "none",
            "DIGESTBOT_FROM_ADDRESS": "digests@digestbot.org",
            "DIGESTBOT_RENDER_PROCESSES": "0",
            "DIGESTBOT_WORKER_POLL": "0.2",
            "DIGESTBOT_ENRICH": "false",
            "DIGESTBOT_SLICE_SIZE": str(self.settings.slice_size),
        }

    def start_workers(self, count: int) -> list[subprocess.Popen[bytes]]:
        """`count` workers, returned once each has registered (their start-up not timed)."""
        started = []
        for n in range(count):
            with (self.logs / f"worker{n}.log").open("ab") as log:
                command = [sys.executable, "-m", "digestbot", "worker"]
                env, out = self.environment(), subprocess.DEVNULL
                started.append(
                    subprocess.Popen(command, env=env, cwd=self.logs, stdout=out, stderr=log)
                )
        while self.scalar("SELECT count(*) FROM workers") < count:
            if any(p.poll() is not None for p in started):
                raise SystemExit(f"a worker stopped; see its log in {self.logs}")
            time.sleep(0.1)
        return started

    def scalar(self, query: str) -> int:
        with self.engine.connect() as db:
            return int(db.execute(text(query)).scalar_one())

    def slice_times(self) -> tuple[list[float], list[float]]:
        with self.engine.connect() as db:
            rows = db.execute(
                text("SELECT seconds, waited FROM work_tasks WHERE state = 'done' ORDER BY id")
            )
            found = rows.all()
        return [r.seconds for r in found], [r.waited for r in found]


def stop(workers: list[subprocess.Popen[bytes]]) -> float:
    """The workers' CPU seconds (read from /proc just before), then SIGTERM and wait."""
    used = sum(sum(proc_cpu(w.pid)) for w in workers)
    for w in workers:
        w.send_signal(signal.SIGTERM)
    for w in workers:
        w.wait(timeout=120)
    return used


def finished(bench: Bench) -> bool:
    """Every slice done (or given up) and no row waiting to be sent or being sent."""
    return (
        bench.scalar("SELECT count(*) FROM work_tasks WHERE state IN ('waiting', 'working')") == 0
        and bench.scalar(
            "SELECT count(*) FROM deliveries WHERE status IN ('pending', 'sending')"
        ) == 0
    )  # fmt: skip


def one_run(bench: Bench, count: int) -> Run:
    """Reset, start `count` workers, make the round and time it until all is sent."""
    bench.reset()
    workers = bench.start_workers(count)
    # Their start-up (imports, connecting) is not the round's: counted from here.
    idle = sum(sum(proc_cpu(w.pid)) for w in workers)
    pg, sink = server_cpu(bench.postmaster), proc_cpu(bench.sink)[0]
    started = time.perf_counter()
    made = tasks.start_digest_round(bench.engine, bench.settings, now=bench.at)
    while made and not finished(bench):
        time.sleep(0.2)
    wall = time.perf_counter() - started
    cpu = {
        "workers": stop(workers) - idle,
        "postgres": server_cpu(bench.postmaster) - pg,
        "sink": proc_cpu(bench.sink)[0] - sink,
    }
    failed = bench.scalar("SELECT count(*) FROM work_tasks WHERE state = 'failed'")
    if failed:
        print(f"  {failed} slices failed; see the workers' logs in {bench.logs}")
    digests = bench.scalar("SELECT count(*) FROM deliveries WHERE status = 'sent'")
    seconds, waited = bench.slice_times()
    return Run(count, digests, wall, cpu, seconds, waited)


def planning(bench: Bench, slices: int) -> list[float]:
    """One worker on a fresh round until `slices` slices are done; their seconds."""
    bench.reset()
    workers = bench.start_workers(1)
    made = tasks.start_digest_round(bench.engine, bench.settings, now=bench.at)
    goal = min(slices, made)
    while bench.scalar("SELECT count(*) FROM work_tasks WHERE state = 'done'") < goal:
        time.sleep(0.2)
    stop(workers)
    return bench.slice_times()[0]


def p90(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.9 * len(ordered)))] if ordered else float("nan")


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def report(runs: list[Run]) -> None:
    """The table of runs, the speed-ups, the CPU ratio and the projection."""
    print(
        "\n| workers | digests | wall s | digests/s | speed-up | CPU ms/digest: workers | "
        "postgres | sink | slice s median / p90 | waited s median / p90 |"
    )
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for n, run in enumerate(runs):
        print(row(run, runs[n - 1] if n else None))
    first, last = runs[0], runs[-1]
    ratio = last.per_digest("workers") / first.per_digest("workers")
    print(
        f"\nworker CPU per digest, {last.workers} workers / {first.workers}: {ratio:.2f} "
        f"({'within' if abs(ratio - 1) <= 0.15 else 'NOT within'} 15%)"
    )
    projection(first)


def row(run: Run, before: Run | None) -> str:
    """The table's line for `run`, its speed-up over the run `before` it."""
    rate = run.digests / run.wall
    up = f"x{rate / (before.digests / before.wall):.2f}" if before else "-"
    ms = {part: run.per_digest(part) * 1000 for part in run.cpu}
    return (
        f"| {run.workers} | {run.digests} | {run.wall:.1f} | {rate:.0f} | {up} | "
        f"{ms['workers']:.2f} | {ms['postgres']:.2f} | {ms['sink']:.2f} | "
        f"{median(run.seconds):.2f} / {p90(run.seconds):.2f} | "
        f"{median(run.waited):.3f} / {p90(run.waited):.3f} |"
    )


def projection(run: Run) -> None:
    """Worker and PostgreSQL cores for TARGET digests in WITHIN seconds, at `run`'s CPU."""
    worker_ms, pg_ms = run.per_digest("workers") * 1000, run.per_digest("postgres") * 1000
    cores = TARGET * worker_ms / 1000 / WITHIN
    pg_cores = TARGET * pg_ms / 1000 / WITHIN
    print(
        f"projection ({run.workers} worker's CPU): {TARGET:,} digests x {worker_ms:.2f} ms "
        f"/ {WITHIN} s = {cores:.1f} worker cores = {-(-cores // HOST_CORES):.0f} "
        f"{HOST_CORES}-core worker hosts (each running {HOST_CORES} workers); PostgreSQL: "
        f"{TARGET:,} x {pg_ms:.2f} ms / {WITHIN} s = {pg_cores:.1f} cores"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=1_000)
    parser.add_argument(
        "--workers", default="1,2,4", help="counts joined by , (none: planning only)"
    )
    parser.add_argument("--slice-size", type=int, default=500)
    parser.add_argument("--scale-readers", type=int, default=300_000)
    parser.add_argument("--skip-scale", action="store_true")
    args = parser.parse_args()
    counts = [] if args.workers == "none" else [int(n) for n in args.workers.split(",")]
    with cluster() as (url, postmaster):
        port = free_port()
        sink = start_sink(port)
        try:
            bench = Bench(url, postmaster, port, sink.pid, args)
            try:
                measure(bench, args, counts)
                shutil.rmtree(bench.logs)  # kept only when something failed, for its logs
            finally:
                bench.engine.dispose()
        finally:
            sink.terminate()
            sink.wait()


def measure(bench: Bench, args: argparse.Namespace, counts: list[int]) -> None:
    """The runs at each worker count, then planning per slice at the larger reader count."""
    took = bench.store(args.readers, args.papers)
    print(
        f"{args.readers} readers, {args.papers} papers stored in {took:.0f} s; slices of "
        f"{args.slice_size}; {os.cpu_count()} cores shared with PostgreSQL and the sink"
    )
    runs = []
    for count in counts:
        runs.append(one_run(bench, count))
        load = os.getloadavg()[0]  # other work on the host skews the figures: show it
        print(f"  {row(runs[-1], runs[-2] if len(runs) > 1 else None)} load {load:.1f}")
    scaled = None
    if not args.skip_scale:
        small = planning(bench, SCALE_SLICES)
        took = bench.grow(args.scale_readers)
        print(f"  {args.scale_readers} readers (copies of the first) stored in {took:.0f} s")
        scaled = (small, planning(bench, SCALE_SLICES))
    if runs:
        report(runs)
    if scaled is not None:
        # The first slice also loads and indexes the round's papers, once per worker.
        low, high = (median(found[1:]) for found in scaled)
        print(
            f"planning per slice (1 worker, {SCALE_SLICES} slices, median after the first): "
            f"{args.readers} readers {low:.3f} s, {args.scale_readers} readers {high:.3f} s "
            f"(x{high / low:.2f}); the first slice {scaled[0][0]:.3f} s and {scaled[1][0]:.3f} s"
        )


if __name__ == "__main__":
    main()
