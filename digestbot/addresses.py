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


def smtp_address(address: str) -> str:
    """The form of a valid `address` that goes on the wire: an internationalised domain in
    its ASCII (IDNA) form; a non-ASCII local part stays UTF-8, sendable only with SMTPUTF8."""
    if address.isascii():
        return address
    checked = validate_email(address, check_deliverability=False)
    return checked.ascii_email or checked.normalized


def needs_smtputf8(address: str) -> bool:
    """Whether `address` (in its SMTP form) can only be sent with the SMTPUTF8 extension."""
    return not address.isascii()
