"""Benchmark: what a long history costs the scheduler's tick. Not a test.

Two databases with the same subscribers (bench_delivery's, daily digests at 08:00 UTC) and
the same papers of the day: one with a day of history, one with a year (each past day: P
papers first seen, every subscriber's digest of 25 of them sent and its period decided, the
last DIGESTBOT_KEEP_MESSAGES_DAYS days' messages still stored), written as digestbot writes
them. On a fresh copy of each, in turn, it times the tick that decides and sends the day's
digests (to an aiosmtpd sink on loopback) and the idle tick after it; medians and the
year/day ratios close it.

    pip install -e '.[test]' && python bench/bench_history.py [--subscribers 1000]
                                        [--papers 100] [--days 365] [--repeat 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import bench_settings, free_port, ingest, start_sink, subscriptions

from digestbot.rules.subscribers import sync_subscriptions
from digestbot.schedule import ledger, runs
from digestbot.store.engine import make_engine

PER_DIGEST = 25
KEPT_DAYS = 14
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLite stores UtcDateTime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=1_000)
    parser.add_argument("--papers", type=int, default=100)
    parser.add_argument("--days", type=int, default=365)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    now = datetime.now(UTC).replace(hour=9, minute=0, second=0, microsecond=0)
    port = free_port()
    sink = start_sink(port)
    try:
        with tempfile.TemporaryDirectory() as folder:
            day = build(Path(folder) / "day.db", 1, args, now)
            year = build(Path(folder) / "year.db", args.days, args, now)
            times: dict[str, list[tuple[float, float]]] = {"day": [], "year": []}
            for _ in range(args.repeat):
                for name, seed in (("day", day), ("year", year)):
                    times[name].append(ticks(seed, Path(folder) / "run.db", port, now))
    finally:
        sink.terminate()
        sink.wait()
    report(times, args)


def build(path: Path, days: int, args: argparse.Namespace, now: datetime) -> Path:
    """A database of `days` days of history, then the day's papers, ready for today's tick."""
    engine = make_engine(f"sqlite:///{path}")
    joined = now - timedelta(days=days + 1)
    sync_subscriptions(engine, subscriptions(args.subscribers), now=joined)
    engine.dispose()
    started = time.perf_counter()
    rows = add_history(path, days, args.papers, now)
    engine = make_engine(f"sqlite:///{path}")
    ingest(engine, args.papers, now - timedelta(hours=3))
    engine.dispose()
    took = time.perf_counter() - started
    print(f"{days} days of history: {rows:,} papers recorded as sent ({took:.0f} s to write)")
    return path


def ticks(seed: Path, database: Path, port: int, now: datetime) -> tuple[float, float]:
    """Seconds of the tick that decides and sends today's digests, and of the idle one after."""
    shutil.copyfile(seed, database)
    settings = bench_settings(f"sqlite:///{database}", port, 4)
    engine = make_engine(settings.database_url)
    ledger.take_lease(engine, now=now)
    found = []
    for moment in (now, now + timedelta(seconds=30)):
        start = time.perf_counter()
        ledger.renew_lease(engine, now=moment)
        decision, report = asyncio.run(runs.send_due(engine, settings, now=moment))
        found.append(time.perf_counter() - start)
        if moment == now and report.count("sent") != decision.emails:
            raise SystemExit(f"the deciding tick sent {report.count('sent')} of {decision.emails}")
    engine.dispose()
    database.unlink()
    return found[0], found[1]


def add_history(path: Path, days: int, papers: int, now: datetime) -> int:
    """Past days as digestbot leaves them: papers, digests sent, periods decided."""
    rng = random.Random(7)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")  # only the bench's own setup
    subscribers = [row[0] for row in connection.execute("SELECT id FROM subscribers")]
    connection.execute("BEGIN")
    for day in range(days, 0, -1):
        date = (now - timedelta(days=day)).date()
        seen = datetime.combine(date, now.time()).replace(hour=6).strftime(STAMP)
        sent_at = datetime.combine(date, now.time()).replace(hour=8, second=5).strftime(STAMP)
        due = datetime.combine(date, now.time()).replace(hour=8).strftime(STAMP)
        ids = [f"past.{day}.{n}" for n in range(papers)]
        (mark,) = connection.execute("SELECT coalesce(max(id), 0) FROM sent_papers").fetchone()
        connection.executemany(
            "INSERT INTO papers (id, title, norm_title, abstract, authors, categories, links,"
            " keywords, sources, first_seen, sent_mark) VALUES (?, 't', 't', 'a', '[]', '[]',"
            " '{}', '[]', '[]', ?, ?)",
            [(paper_id, seen, mark) for paper_id in ids],
        )
        for sub in subscribers:
            sent = rng.sample(ids, PER_DIGEST)
            row = connection.execute(
                "INSERT INTO deliveries (subscriber_id, kind, period_key, message_id, status,"
                " attempts, paper_ids, created_at, updated_at, sent_at) VALUES (?, 'digest', ?,"
                " ?, 'sent', 1, ?, ?, ?, ?)",
                (sub, date.isoformat(), f"<past.{day}.{sub}@bench>", json.dumps(sent), due,
                 sent_at, sent_at),
            ).lastrowid  # fmt: skip
            connection.executemany(
                "INSERT INTO sent_papers (subscriber_id, paper_id, delivery_id, sent_at)"
                " VALUES (?, ?, ?, ?)",
                [(sub, paper_id, row, sent_at) for paper_id in sent],
            )
            connection.execute(
                "INSERT INTO digest_periods (subscriber_id, period_key, due_at, decided_at,"
                " papers) VALUES (?, ?, ?, ?, ?)",
                (sub, date.isoformat(), due, due, PER_DIGEST),
            )
            if day <= KEPT_DAYS:
                connection.execute(
                    "INSERT INTO delivery_messages (delivery_id, raw) VALUES (?, ?)",
                    (row, b"x" * 1024),
                )
    connection.execute("COMMIT")
    connection.close()
    return days * len(subscribers) * PER_DIGEST


def report(times: dict[str, list[tuple[float, float]]], args: argparse.Namespace) -> None:
    median = statistics.median
    print(
        f"{args.subscribers} subscribers, daily digests of {PER_DIGEST} papers, "
        f"{args.papers} papers a day; tick times, median of {args.repeat}:"
    )
    for n, kind in enumerate(("deciding and sending the day's digests", "idle, right after")):
        day = median(t[n] for t in times["day"])
        year = median(t[n] for t in times["year"])
        each = ", ".join(
            f"{y[n] / d[n]:.2f}" for d, y in zip(times["day"], times["year"], strict=True)
        )
        print(
            f"  {kind}: 1 day {day * 1000:.1f} ms, {args.days} days {year * 1000:.1f} ms, "
            f"{year / day:.2f}x (rounds {each})"
        )


if __name__ == "__main__":
    main()
