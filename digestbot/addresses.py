"""Email addresses: the one place that decides what is a valid address."""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email


def normalise_address(value: str) -> str:
    """Return the address with its domain lower-cased, or raise ValueError saying why not."""
    try:
        checked = validate_email(value.strip(), check_deliverability=False)
    except EmailNotValidError as exc:
        raise ValueError(f"{value!r} is not a valid email address: {exc}") from None
    return checked.normalized
