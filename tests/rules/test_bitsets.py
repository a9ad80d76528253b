"""Tests for the bitset arithmetic the matching index runs on."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from digestbot.rules.bitsets import count, equals, union

WIDTH = 40
UNIVERSE = (1 << WIDTH) - 1
masks = st.lists(st.integers(min_value=0, max_value=UNIVERSE), max_size=12)


@given(masks, st.integers(min_value=0, max_value=13))
def test_equals_picks_the_papers_in_exactly_that_many_masks(given_masks: list[int], n: int) -> None:
    """A paper is in equals(count(masks), n) exactly when n of the masks contain it."""
    found = equals(count(given_masks), n, UNIVERSE)
    for i in range(WIDTH):
        in_masks = sum(mask >> i & 1 for mask in given_masks)
        assert (found >> i & 1) == (in_masks == n)


@given(masks)
def test_union_is_every_paper_in_any_mask(given_masks: list[int]) -> None:
    """union() is the OR of the masks, and nothing for none."""
    expected = 0
    for mask in given_masks:
        expected |= mask
    assert union(given_masks) == union(iter(given_masks)) == expected
