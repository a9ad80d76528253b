"""Tests for the DATA fast path: the same bytes on the wire as aiosmtplib's own DATA."""

from __future__ import annotations

from aiosmtplib.protocol import PERIOD_REGEX, normalize_message_line_endings
from hypothesis import given
from hypothesis import strategies as st

from digestbot.delivery.smtpdata import wire_data


def aiosmtplib_wire(raw: bytes) -> bytes:
    """What aiosmtplib's own DATA writes for `raw`."""
    return PERIOD_REGEX.sub(b"..", normalize_message_line_endings(raw)) + b".\r\n"


@given(st.binary().map(lambda b: b.translate(bytes(b"a.\r\n"[i % 4] for i in range(256)))))
def test_wire_data_writes_what_aiosmtplib_would_or_leaves_it_to_aiosmtplib(raw: bytes) -> None:
    """For any bytes, the DATA fast path is either aiosmtplib's own output or not taken."""
    wire = wire_data(raw)
    assert wire is None or wire == aiosmtplib_wire(raw)


@given(st.lists(st.text(alphabet="a. ", max_size=6), min_size=1))
def test_wire_data_takes_every_message_with_crlf_line_endings(lines: list[str]) -> None:
    """CRLF throughout, dots anywhere: the fast path is taken, and stuffs as aiosmtplib does."""
    raw = "".join(line + "\r\n" for line in lines).encode()
    assert wire_data(raw) == aiosmtplib_wire(raw)
