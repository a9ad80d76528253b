"""Benchmark: match 100,000 subscribers against 1,000 papers with the indexed matcher,
and, in the same run, the straightforward per-subscriber, per-paper way on a slice.

    python bench/bench_matching.py [--subscribers 100000] [--papers 1000] [--slice 1000]

Prints wall times, peak memory and the per-subscriber speed ratio. Not a test.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import EPOCH, make_papers, make_subscribers

from digestbot.rules.digests import DigestBuilder
from digestbot.rules.matching import PaperText, explain, rank_key


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def indexed(papers, subscribers):  # type: ignore[no-untyped-def]
    """Every subscriber's ranked, capped digest through one shared index."""
    builder = DigestBuilder(papers)
    since = EPOCH.replace(year=2000)
    return [
        [
            i.paper.id
            for i in builder.build(s, since=since, already_sent=(), now=EPOCH, period_key="b").items
        ]
        for s in subscribers
    ]


def straightforward(papers, subscribers):  # type: ignore[no-untyped-def]
    """Each subscriber's rules against each paper's text (tokenised once, to be fair)."""
    texts = [PaperText.of(p) for p in papers]
    result = []
    for s in subscribers:
        found = [
            (p, m)
            for p, t in zip(papers, texts, strict=True)
            if (m := explain(s.rules, t)) is not None
        ]
        found.sort(key=lambda pm: rank_key(*pm))
        result.append([p.id for p, _ in found[: s.max_papers]])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--subscribers", type=int, default=100_000)
    parser.add_argument("--papers", type=int, default=1_000)
    parser.add_argument("--slice", type=int, default=1_000)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    papers = make_papers(args.papers)
    subscribers = make_subscribers(args.subscribers)
    print(
        f"generated {len(papers)} papers, {len(subscribers)} subscribers; "
        f"peak RSS so far {peak_rss_mb():.0f} MB"
    )

    times = []
    for _ in range(args.repeat):
        start = time.perf_counter()
        full = indexed(papers, subscribers)
        times.append(time.perf_counter() - start)
    matched = sum(len(d) for d in full)
    full_median = statistics.median(times)
    print(
        f"indexed, all {len(subscribers)} subscribers: median {full_median:.2f} s over "
        f"{args.repeat} runs ({', '.join(f'{t:.2f}' for t in times)}); "
        f"{matched} papers in digests; "
        f"peak RSS {peak_rss_mb():.0f} MB"
    )

    part = subscribers[: args.slice]
    start = time.perf_counter()
    naive = straightforward(papers, part)
    naive_time = time.perf_counter() - start
    assert naive == full[: args.slice], "the two approaches disagree on the slice"
    start = time.perf_counter()
    indexed(papers, part)
    slice_indexed = time.perf_counter() - start
    per_naive = naive_time / len(part)
    per_indexed = full_median / len(subscribers)
    print(
        f"straightforward, {len(part)}-subscriber slice: {naive_time:.2f} s "
        f"({per_naive * 1000:.2f} ms per subscriber); same digests as indexed"
    )
    print(f"indexed on the same slice alone (cold index): {slice_indexed:.2f} s")
    print(
        f"speed ratio per subscriber (straightforward / indexed at full scale): "
        f"{per_naive / per_indexed:.0f}x"
    )
    print(
        f"straightforward extrapolated to {len(subscribers)} subscribers: "
        f"{per_naive * len(subscribers) / 60:.0f} min"
    )


if __name__ == "__main__":
    main()
