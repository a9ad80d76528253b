"""Deterministic synthetic papers and subscribers for the matching benchmark."""

from __future__ import annotations

import random
from datetime import UTC, datetime

from digestbot.models import Paper, Rule, Subscriber

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)

TOPIC_WORDS = """
attention transformer transformers diffusion quantization quantized pruning distillation
sparse linear flash kernel kernels language vision multimodal retrieval augmented
generation reasoning chain thought reinforcement learning policy reward preference
alignment safety robustness adversarial benchmark evaluation dataset datasets tokenizer
tokenization embedding embeddings graph graphs neural network networks convolutional
recurrent state space mamba mixture experts routing scaling laws pretraining finetuning
instruction tuning adapter lora low rank compression memory efficient inference latency
throughput speculative decoding draft video image audio speech text code program synthesis
agent agents tool planning robot robotics navigation manipulation world model simulation
physics protein molecule chemistry biology medical clinical segmentation detection
tracking depth stereo point cloud nerf gaussian splatting rendering reconstruction pose
estimation human motion generative adversarial variational autoencoder flow matching
consistency distillation sampling guidance classifier free contrastive self supervised
representation clustering federated privacy differential fairness bias interpretability
explanation hallucination factuality calibration uncertainty bayesian optimization
gradient descent convergence theory generalization
""".split()
FILLER = """
we propose a novel method that our approach the results show significant improvements over
baselines in this paper extensive experiments on several benchmarks demonstrate and
achieves state of art performance while reducing cost furthermore analysis reveals code is
available
""".split()
PHRASES = [
    "linear attention",
    "sparse attention",
    "flash attention",
    "state space",
    "mixture of experts",
    "chain of thought",
    "reinforcement learning",
    "point cloud",
    "flow matching",
    "low rank",
    "speculative decoding",
    "world model",
    "gaussian splatting",
    "self supervised",
]
FIRST = """
Yann Ada Li Wei Maria Jonas Amelie Kenji Priya Omar Sofia Lucas Hana Ivan Zoe
""".split()
LAST = """
LeCun Lovelace Zhang Wang Garcia Backstrom Rousseau Tanaka Raghunathan Haddad Rossi Silva
Kim Petrov Karlsson Chen Liu Novak Mueller Dubois Costa Okafor Singh Ahmed Ito
""".split()
TYPOS = {
    "transformer": "transfromer",
    "quantization": "quantisation",
    "diffusion": "difusion",
    "reinforcement": "reinforcment",
    "segmentation": "segmentaton",
}


def make_papers(count: int, seed: int = 1) -> list[Paper]:
    """`count` papers with ML-flavoured titles and ~180-word abstracts."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 0.8 for rank in range(len(TOPIC_WORDS))]
    papers = []
    for i in range(count):

        def topical(n: int) -> list[str]:
            return rng.choices(TOPIC_WORDS, weights, k=n)

        title = " ".join([*topical(rng.randint(5, 10)), rng.choice(PHRASES)])
        abstract_words = []
        for _ in range(rng.randint(140, 220)):
            roll = rng.random()
            abstract_words.append(
                rng.choice(PHRASES)
                if roll < 0.03
                else rng.choice(FILLER)
                if roll < 0.55
                else topical(1)[0]
            )
        authors = tuple(f"{rng.choice(FIRST)} {rng.choice(LAST)}" for _ in range(rng.randint(1, 8)))
        papers.append(
            Paper(
                id=f"b{i}",
                title=title.capitalize(),
                abstract=" ".join(abstract_words),
                first_seen=EPOCH,
                upvotes=rng.choice([None, 0, 1, 2, 5, 10, 40]),
                authors=authors,
            )
        )
    return papers


def make_subscribers(count: int, seed: int = 2) -> list[Subscriber]:
    """`count` subscribers with 1-3 rules and 3-8 terms in all; some authors, prefixes, fuzzy."""
    rng = random.Random(seed)
    weights = [1 / (rank + 1) ** 0.5 for rank in range(len(TOPIC_WORDS))]
    subscribers = []
    for n in range(count):
        total_terms = rng.randint(3, 8)
        rule_count = rng.randint(1, min(3, total_terms))
        rules = []
        for r in range(rule_count):
            size = max(1, total_terms // rule_count)
            terms = []
            for _ in range(size):
                roll = rng.random()
                if roll < 0.2:
                    terms.append(rng.choice(PHRASES))
                elif roll < 0.3:
                    terms.append(rng.choices(TOPIC_WORDS, weights)[0][:5] + "*")
                else:
                    terms.append(rng.choices(TOPIC_WORDS, weights)[0])
            fuzzy = None
            if rng.random() < 0.1:
                fuzzy = 85
                word = rng.choice(list(TYPOS))
                terms[0] = TYPOS[word]
            kind = rng.random()
            if kind < 0.1:
                rule = Rule(f"r{r}", authors=(f"{rng.choice(FIRST)[0]}. {rng.choice(LAST)}",))
            elif kind < 0.35 and len(terms) >= 2:
                rule = Rule(f"r{r}", all=tuple(terms[:2]), any=tuple(terms[2:]), fuzzy=fuzzy)
            else:
                none = (rng.choice(TOPIC_WORDS),) if rng.random() < 0.2 else ()
                rule = Rule(f"r{r}", any=tuple(terms), none=none, fuzzy=fuzzy)
            rules.append(rule)
        subscribers.append(Subscriber(n, f"s{n}@example.org", "", tuple(rules), max_papers=25))
    return subscribers
