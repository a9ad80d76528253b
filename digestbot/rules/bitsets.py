"""Rules stage (pure): bitsets for matching; a set of papers is a Python int whose bit i
stands for papers[i], so union is OR and intersection AND over a whole batch at once."""

from __future__ import annotations

from collections.abc import Iterator, Sequence


def count(masks: Sequence[int]) -> list[int]:
    """Bit-sliced counters: bit k of a paper's count of `masks` containing it is in result[k]."""
    counters: list[int] = []
    for mask in masks:
        carry = mask
        for k, counter in enumerate(counters):
            counters[k] = counter ^ carry
            carry &= counter
            if not carry:
                break
        if carry:
            counters.append(carry)
    return counters


def equals(counters: Sequence[int], value: int, universe: int) -> int:
    """Papers of `universe` whose bit-sliced count equals `value`."""
    if value >> len(counters):
        return 0
    result = universe
    for k, counter in enumerate(counters):
        result &= counter if value >> k & 1 else ~counter
    return result


def union(masks: Iterator[int] | Sequence[int]) -> int:
    """Papers in any of `masks`."""
    result = 0
    for mask in masks:
        result |= mask
    return result
