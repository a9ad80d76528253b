"""Benchmark: "papers like these" for 100,000 readers, beside the keyword matcher.

Each reader has one rule of three seed papers drawn from a stored corpus; 1,000 new papers
are scored against every rule (each paper's best cosine to the rule's seeds; one sparse
product for every distinct seed, then a reduction per batch of readers), and each reader's
25 most alike papers are kept, as a `top: 25` rule does. The keyword matcher runs on the
same 1,000 papers for as many generated readers in the same run. Prints wall times, peak
memory and the selection counts.
"""

from __future__ import annotations

import argparse
import random
import resource
import statistics
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from generate import make_papers, make_subscribers

from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.similarity import TextModel, best_by_rule, cosines, paper_text

KEEP = 25


def peak_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def like_scoring(readers: int, corpus_size: int, new: int, batch: int) -> tuple[float, float, int]:
    """(fit seconds, scoring seconds, papers selected in all) for `readers` like-rules."""
    corpus = make_papers(corpus_size, seed=1)
    fresh = make_papers(new, seed=9)
    started = time.perf_counter()
    model = TextModel(corpus)
    stored = model.vectors([paper_text(p) for p in corpus])  # each paper's vector, once
    fitted = time.perf_counter() - started
    rng = random.Random(3)
    seeds = np.array([rng.randrange(corpus_size) for _ in range(readers * 3)], dtype=np.intp)
    started = time.perf_counter()
    papers = model.vectors([paper_text(p) for p in fresh])
    # Readers share seed papers: each distinct seed's cosines are computed once.
    distinct, rows = np.unique(seeds, return_inverse=True)
    every = cosines(papers, stored[distinct])
    selected = 0
    for first in range(0, readers, batch):
        last = min(readers, first + batch)
        starts = range(0, (last - first) * 3, 3)
        best = best_by_rule(every, starts, rows[first * 3 : last * 3])
        # A `top: 25` rule: each reader's KEEP most alike papers (cosine above 0).
        kept = np.take_along_axis(best, np.argpartition(-best, KEEP, axis=0)[:KEEP], axis=0)
        selected += int((kept > 0).sum())
    return fitted, time.perf_counter() - started, selected


def keyword_matching(readers: int, new: int) -> tuple[float, int]:
    """(seconds, papers selected in all) for the keyword matcher on generated readers."""
    subscribers = make_subscribers(readers)
    papers = make_papers(new, seed=9)
    started = time.perf_counter()
    index = PaperIndex(papers)
    matcher = Matcher(index)
    selected = sum(len(matcher.top(s, index.everything, KEEP)[0]) for s in subscribers)
    return time.perf_counter() - started, selected


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--readers", type=int, default=100_000)
    parser.add_argument("--corpus", type=int, default=20_000, help="stored papers")
    parser.add_argument("--papers", type=int, default=1_000, help="new papers")
    parser.add_argument("--batch", type=int, default=5_000, help="readers per product")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    fits, scorings, keywords = [], [], []
    for number in range(1, args.rounds + 1):
        fit, scoring, liked = like_scoring(args.readers, args.corpus, args.papers, args.batch)
        matching, matched = keyword_matching(args.readers, args.papers)
        fits.append(fit)
        scorings.append(scoring)
        keywords.append(matching)
        print(
            f"round {number}: like: fit {fit:.1f} s on {args.corpus:,} stored papers, scoring "
            f"{scoring:.1f} s ({liked:,} selected); keywords: {matching:.1f} s "
            f"({matched:,} selected); peak RSS so far {peak_mb():,.0f} MB"
        )
    median = statistics.median
    print(
        f"\nmedians over {args.rounds} rounds, {args.readers:,} readers x {args.papers:,} papers:"
        f"\n  like scoring {median(scorings):.1f} s (limit 60 s), model fit "
        f"{median(fits):.1f} s (once per refit, not per run)"
        f"\n  keyword matching {median(keywords):.1f} s; like / keywords "
        f"{median(scorings) / median(keywords):.2f}"
        f"\n  peak RSS {peak_mb():,.0f} MB (limit 2,048 MB)"
    )


if __name__ == "__main__":
    main()
