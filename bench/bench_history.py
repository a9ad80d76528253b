"""Benchmark: what a long history of sent digests costs planning. Not a test.

Two databases with the bench_delivery data (S subscribers, P papers first seen an hour
ago): one without history, one where D past days of digests went out first (P papers a
day, 25 of them sent to every subscriber each day, recorded as digestbot records them).
Times planning every digest (`service.plan_digests`: reading the state, deciding) on each,
in this run; it prints the medians and the ratio.

    pip install -e . && python bench/bench_history.py [--subscribers 10000] [--days 30]
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_delivery import ingest, subscriptions

from digestbot import service
from digestbot.delivery.pipeline import tune_gc
from digestbot.rules.subscribers import sync_subscriptions
from digestbot.settings import Settings
from digestbot.store.engine import make_engine

PER_DIGEST = 25
STAMP = "%Y-%m-%d %H:%M:%S.%f"  # how SQLite stores UtcDateTime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--subscribers", type=int, default=10_000)
    parser.add_argument("--papers", type=int, default=500)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    tune_gc()
    now = datetime.now(UTC)
    with tempfile.TemporaryDirectory() as folder:
        base, fresh_db, aged_db = (Path(folder) / f"{n}.db" for n in ("base", "fresh", "aged"))
        engine = make_engine(f"sqlite:///{base}")
        sync_subscriptions(
            engine, subscriptions(args.subscribers), now=now - timedelta(days=args.days + 1)
        )
        engine.dispose()
        shutil.copyfile(base, fresh_db)
        shutil.copyfile(base, aged_db)
        rows = add_history(aged_db, args.days, args.papers, now)
        # Today's papers come last, as they would: stored after the history was sent.
        fresh, aged = (plan_times(db, args, now) for db in (fresh_db, aged_db))
    print(
        f"{args.subscribers} subscribers, {args.papers} new papers; planning every digest "
        f"(median of {args.repeat}):"
    )
    before, after = statistics.median(fresh), statistics.median(aged)
    print(f"  no history: {before:.2f} s")
    print(
        f"  after {args.days} days of digests ({rows:,} papers recorded as sent): "
        f"{after:.2f} s, {after / before:.2f}x"
    )
    print(f"  peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


def plan_times(database: Path, args: argparse.Namespace, now: datetime) -> list[float]:
    """Ingest today's papers into `database`, then time plan_digests `args.repeat` times."""
    settings = Settings(database_url=f"sqlite:///{database}", _env_file=None)  # type: ignore[call-arg]
    engine = make_engine(settings.database_url)
    ingest(engine, args.papers, now - timedelta(hours=1))
    found = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        service.plan_digests(engine, settings, now=now)
        found.append(time.perf_counter() - start)
    engine.dispose()
    return found


def add_history(path: Path, days: int, papers: int, now: datetime) -> int:
    """Days of past digests, each day's papers first seen that day and sent that day."""
    rng = random.Random(7)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA synchronous=OFF")  # only the bench's own setup
    subscribers = [row[0] for row in connection.execute("SELECT id FROM subscribers")]
    connection.execute("BEGIN")
    for day in range(days, 0, -1):
        when = (now - timedelta(days=day)).replace(tzinfo=None).strftime(STAMP)
        ids = [f"past.{day}.{n}" for n in range(papers)]
        (mark,) = connection.execute("SELECT coalesce(max(id), 0) FROM sent_papers").fetchone()
        connection.executemany(
            "INSERT INTO papers (id, title, norm_title, abstract, authors, categories, links,"
            " keywords, sources, first_seen, sent_mark) VALUES (?, 't', 't', 'a', '[]', '[]',"
            " '{}', '[]', '[]', ?, ?)",
            [(paper_id, when, mark) for paper_id in ids],
        )
        for sub in subscribers:
            sent = rng.sample(ids, PER_DIGEST)
            row = connection.execute(
                "INSERT INTO deliveries (subscriber_id, kind, period_key, message_id, status,"
                " attempts, paper_ids, created_at, updated_at, sent_at) VALUES (?, 'digest', ?,"
                " ?, 'sent', 1, ?, ?, ?, ?)",
                (
                    sub,
                    f"past:{day}",
                    f"<past.{day}.{sub}@bench>",
                    json.dumps(sent),
                    when,
                    when,
                    when,
                ),
            ).lastrowid
            connection.executemany(
                "INSERT INTO sent_papers (subscriber_id, paper_id, delivery_id, sent_at)"
                " VALUES (?, ?, ?, ?)",
                [(sub, paper_id, row, when) for paper_id in sent],
            )
    connection.execute("COMMIT")
    connection.close()
    return days * len(subscribers) * PER_DIGEST


if __name__ == "__main__":
    main()
