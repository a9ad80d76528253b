"""Benchmark: how well each way of choosing papers finds a topic's relevant ones.

On the labelled set in tests/fixtures/relevance/ (the saved listings' papers, each labelled
relevant or not for each topic by reading it against a written rule), per topic and at
k = 10 and 25: (a) the topic's keyword rule, written before the labels, ranked as a digest
ranks; (b) "papers like these": TF-IDF cosine to the topic's three seed papers; (c) a model
trained on 10 simulated votes (5 relevant, 5 not, drawn from the labels with a fixed seed),
ranking every paper, and the keyword rule's papers re-ranked by it plus up to 10 it
recommends; (d) dense embeddings (a model2vec model named by DIGESTBOT_EMBEDDING_MODEL),
when one is given. Seeds and voted papers are left out of the scoring. Prints precision@k,
recall@k and nDCG@k per topic and the mean.
"""

from __future__ import annotations

import argparse
import csv
import json
import math
import os
import random
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

from digestbot.ingest import read_listing
from digestbot.ingest.papers import paper_id
from digestbot.ingest.textnorm import normalise_title
from digestbot.models import Paper, Subscriber
from digestbot.rules import learning
from digestbot.rules.embedding import EmbeddingModel
from digestbot.rules.matchindex import Matcher, PaperIndex
from digestbot.rules.similarity import TextModel, Vectorizer, paper_text, rank_like
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


def like_ranking(model: Vectorizer, topic: Topic, papers: Sequence[Paper]) -> list[str]:
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=7, help="seed of the simulated votes")
    parser.add_argument("--draws", type=int, default=10, help="vote draws averaged over")
    args = parser.parse_args()
    papers = load_papers()
    topics = load_topics(papers)
    model = TextModel(papers)
    named = os.environ.get("DIGESTBOT_EMBEDDING_MODEL")
    dense = EmbeddingModel(named) if named else None
    rng = random.Random(args.seed)
    print(
        f"{len(papers)} papers, {len(topics)} topics, {args.draws} draws of votes; relevant "
        "per topic: " + ", ".join(f"{t.id} {len(t.relevant)}" for t in topics)
    )
    totals: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
    for topic in topics:
        print(f"\n{topic.id}: {topic.name} ({len(topic.relevant)} relevant)")
        per_topic: dict[tuple[str, int], list[tuple[float, float, float]]] = {}
        fixed = {"keywords": keyword_ranking(topic, papers)}
        fixed["like (3 seeds)"] = like_ranking(model, topic, papers)
        if dense is not None:
            fixed["dense embeddings (3 seeds)"] = like_ranking(dense, topic, papers)
        for _ in range(args.draws):
            votes = simulated_votes(topic, papers, rng)
            rankings = {
                **fixed,
                "votes (10) alone": votes_ranking(model, votes, papers),
                f"keywords + votes + recommend {RECOMMEND}": keywords_with_votes(
                    model, topic, votes, papers
                ),
            }
            # The same papers are left out of every method's scoring: seeds and voted.
            left_out = frozenset(topic.seeds) | votes.ids
            relevant = topic.relevant - left_out
            for name, ranking in rankings.items():
                kept = [pid for pid in ranking if pid not in left_out]
                for k in KS:
                    per_topic.setdefault((name, k), []).append(metrics(kept, relevant, k))
        for key, rows in per_topic.items():
            totals.setdefault(key, []).append(_mean(rows))
        _print_rows(per_topic)
    print(f"\nmean over topics (each topic's figures averaged over {args.draws} draws first)")
    _print_rows(totals)
    if dense is None:
        print(
            "  dense embeddings                   not measured: set DIGESTBOT_EMBEDDING_MODEL"
            " to a model2vec model (folder or name)"
        )


def _mean(rows: Sequence[tuple[float, float, float]]) -> tuple[float, float, float]:
    p, r, n = (sum(row[i] for row in rows) / len(rows) for i in range(3))
    return p, r, n


def _print_rows(table: dict[tuple[str, int], list[tuple[float, float, float]]]) -> None:
    for name in dict.fromkeys(name for name, _ in table):
        cells = ["P {:.2f} R {:.2f} nDCG {:.2f}".format(*_mean(table[(name, k)])) for k in KS]
        print(f"  {name:<34} @10 {cells[0]}   @25 {cells[1]}")


@dataclass(frozen=True)
class Votes:
    """A simulated reader's votes on one topic: 5 relevant papers up, 5 others down."""

    liked: tuple[Paper, ...]
    disliked: tuple[Paper, ...]

    @property
    def ids(self) -> frozenset[str]:
        return frozenset(p.id for p in (*self.liked, *self.disliked))


def simulated_votes(topic: Topic, papers: Sequence[Paper], rng: random.Random) -> Votes:
    """VOTES relevant and VOTES irrelevant papers drawn from the labels (seeds excluded)."""
    pool = [p for p in papers if p.id not in topic.seeds]
    good = [p for p in pool if p.id in topic.relevant]
    bad = [p for p in pool if p.id not in topic.relevant]
    return Votes(tuple(rng.sample(good, VOTES)), tuple(rng.sample(bad, VOTES)))


def votes_ranking(model: TextModel, votes: Votes, papers: Sequence[Paper]) -> list[str]:
    """Every paper by the vote-trained model's probability of an up vote."""
    taste = learning.train(model, votes.liked, votes.disliked)
    if taste is None:
        return []
    scores = taste.score(papers)
    order = sorted(range(len(papers)), key=lambda i: (-scores[i], papers[i].id))
    return [papers[i].id for i in order]


def keywords_with_votes(
    model: TextModel, topic: Topic, votes: Votes, papers: Sequence[Paper]
) -> list[str]:
    """The keyword rule's papers re-ranked by the vote-trained model, then the papers it
    recommends that the rule did not select, as a digest would show them."""
    taste = learning.train(model, votes.liked, votes.disliked)
    chosen = keyword_ranking(topic, papers)
    if taste is None:
        return chosen
    by_id = {p.id: p for p in papers}
    reranked = learning.rerank(taste, [(by_id[pid], 0.0) for pid in chosen])
    extra = learning.recommend(taste, papers, set(chosen), RECOMMEND)
    return [r.paper.id for r in reranked] + [r.paper.id for r in extra]


if __name__ == "__main__":
    main()
