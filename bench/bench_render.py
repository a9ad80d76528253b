"""Benchmark: the render cost of one 25-paper digest (subject, text and HTML templates, CSS
inlining, and the RFC 5322 message as bytes), median over many runs. Not a test.

    pip install -e '.[test]' && python bench/bench_render.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import email.policy
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from samples import fixture_digest

from digestbot.render import Envelope, build_message, make_environment, render_digest

NOW = datetime(2026, 11, 24, 7, 0, tzinfo=UTC)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=200)
    args = parser.parse_args()
    digest = fixture_digest(NOW)
    env = make_environment(None)
    envelope = Envelope(
        "digestbot@example.org", "digestbot", "ada@example.org", "Ada", "<m@example.org>", NOW
    )
    render_digest(env, digest)  # compile the templates once, as a long-running sender does
    times = []
    size = 0
    for _ in range(args.repeat):
        start = time.perf_counter()
        raw = build_message(render_digest(env, digest), envelope).as_bytes(policy=email.policy.SMTP)
        times.append((time.perf_counter() - start) * 1000)
        size = len(raw)
    quartiles = statistics.quantiles(times, n=4)
    print(
        f"{len(digest.items)}-paper digest, {size} bytes: median {statistics.median(times):.2f} ms"
        f" per digest (p25 {quartiles[0]:.2f}, p75 {quartiles[2]:.2f}) over {args.repeat} runs"
    )


if __name__ == "__main__":
    main()
