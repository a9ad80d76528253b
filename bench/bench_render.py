"""Benchmark: the render cost of one 25-paper digest (subject, text and HTML templates, the
HTML styled as its templates were compiled, and the RFC 5322 message as bytes), median over
many runs. Not a test.

    pip install -e '.[test]' && python bench/bench_render.py [--repeat 200]
"""

from __future__ import annotations

import argparse
import email.policy
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from samples import fixture_digest

from digestbot.compose.mime import transfer_encoding
from digestbot.compose.render import Envelope, build_message, make_environment, render_digest

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

    def ours() -> bytes:
        return build_message(render_digest(env, digest), envelope)

    reference = email.message_from_bytes(ours(), policy=email.policy.default)  # its headers

    def baseline() -> bytes:
        """The same digest built with the email package's newer EmailMessage API (what
        build_message used before): headers as ours, the same explicit transfer encodings."""
        rendered = render_digest(env, digest)
        message = EmailMessage()
        for name in HEADERS:
            message[name] = reference[name]
        message.set_content(rendered.text, cte=transfer_encoding(rendered.text.encode()))
        message.add_alternative(
            rendered.html, subtype="html", cte=transfer_encoding(rendered.html.encode())
        )
        return message.as_bytes(policy=email.policy.SMTP)

    results = {
        label: timed(run, args.repeat) for label, run in (("ours", ours), ("base", baseline))
    }
    for label, (median, p25, p75, size) in results.items():
        name = "render + message" if label == "ours" else "baseline, EmailMessage API"
        print(
            f"{name}: {len(digest.items)}-paper digest, {size} bytes: median {median:.2f} ms"
            f" per digest (p25 {p25:.2f}, p75 {p75:.2f}) over {args.repeat} runs"
        )
    print(f"baseline / ours: {results['base'][0] / results['ours'][0]:.2f}x")


HEADERS = (
    "Subject",
    "From",
    "To",
    "Date",
    "Message-ID",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
)


def timed(run: Callable[[], bytes], repeat: int) -> tuple[float, float, float, int]:
    """Median, p25 and p75 in ms over `repeat` runs, and the message size."""
    times, size = [], 0
    for _ in range(repeat):
        start = time.perf_counter()
        size = len(run())
        times.append((time.perf_counter() - start) * 1000)
    quartiles = statistics.quantiles(times, n=4)
    return statistics.median(times), quartiles[0], quartiles[2], size


if __name__ == "__main__":
    main()
